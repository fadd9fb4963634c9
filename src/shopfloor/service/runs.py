"""Runs: the claim-with-lease model of the Veryfront agent-workers protocol over the queue
engine. A run is a session row whose queue is `vf:<project id>:<implementation kind>:<worker
key>`, so a claim is one indexed range scan, plus a run row with the public ids, the request
snapshot and the AG-UI event cursors. No HTTP and no SQL here."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shopfloor.ids import new_session_id
from shopfloor.service.auth import digest
from shopfloor.service.dispatch import Dispatcher
from shopfloor.service.errors import (
    Conflict,
    CursorMismatch,
    LeaseNotHeld,
    RunNotFound,
    RunTerminal,
    WorkerNotFound,
)
from shopfloor.store.records import (
    LIVE_STATUSES,
    PENDING,
    STOPPED,
    TERMINAL_STATUSES,
    WORKER_ACTIVE,
    WORKER_DEAD,
    Expect,
    SessionEvent,
    SessionRecord,
    WorkerRecord,
)
from shopfloor.store.run_records import (
    AgentWorkerRecord,
    RunEventRecord,
    RunRecord,
    WorkerSessionRecord,
)

PROTOCOL = "veryfront"
ANY_WORKER = "*"  # the worker-key part of the queue of runs any worker of the kind may claim
DEFAULT_RUN_PRIORITY = 3
WORKER_TOKEN_PREFIX = "vfw_"
SESSION_TERMINAL = ("completed", "failed", "cancelled")
QUEUE_MAX_LENGTH = 200
# Slugs map to stable UUIDs, so a project named by slug and by its UUID is one project.
_PROJECT_NAMESPACE = uuid.UUID("6f1c2a34-52b5-4d0e-9a57-0f9e4b1c7d21")


@dataclass(frozen=True)
class ProjectRef:
    id: str  # a UUID, what the wire shows as project_id
    name: str  # the slug, or the UUID when referenced by UUID; sessions.project


def project_ref(reference: str) -> ProjectRef:
    """A project referenced by UUID or by slug."""
    try:
        parsed = uuid.UUID(reference)
    except ValueError:
        return ProjectRef(str(uuid.uuid5(_PROJECT_NAMESPACE, reference)), reference)
    return ProjectRef(str(parsed), str(parsed))


def run_queue(project_id: str, implementation_kind: str, worker_key: str | None) -> str:
    queue = f"vf:{project_id}:{implementation_kind}:{worker_key or ANY_WORKER}"
    if len(queue) <= QUEUE_MAX_LENGTH:
        return queue
    # sessions.queue holds 200 characters; a long worker key is stood in for by its digest.
    return f"vf:{project_id}:{implementation_kind}:#{digest(worker_key or '')[:32]}"


@dataclass(frozen=True)
class NewRun:
    project_reference: str
    implementation_kind: str
    worker_key: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    conversation_id: str | None = None
    message_id: str | None = None
    request_snapshot: dict[str, Any] | None = None
    idempotency_key: str | None = None
    priority: int | None = None
    title: str | None = None


@dataclass(frozen=True)
class RunState:
    run: RunRecord
    session: SessionRecord
    worker_session: WorkerSessionRecord | None = None


@dataclass(frozen=True)
class Admission:
    state: RunState
    duplicate: bool


@dataclass(frozen=True)
class AgentWorker:
    worker: WorkerRecord
    details: AgentWorkerRecord


@dataclass(frozen=True)
class Registration:
    worker: AgentWorker
    token: str


class RunService:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.store = dispatcher.store
        self.clock = dispatcher.clock

    # -- workers --

    async def register(
        self,
        *,
        project_reference: str,
        implementation_kind: str,
        worker_key: str,
        implementation_display_name: str | None,
        display_name: str | None,
        metadata: Any,
        registration_id: str | None = None,
    ) -> Registration:
        """Register (or re-register: same project, kind and key) a worker; a fresh token
        replaces any earlier one. `registration_id`: the registration token it registered
        with, whose revocation revokes the worker's token too."""
        project = project_ref(project_reference)
        now = self.clock.now_ms()
        worker_id = str(uuid.uuid4())
        token = WORKER_TOKEN_PREFIX + secrets.token_urlsafe(32)
        worker, details = await self.store.register_agent_worker(
            WorkerRecord(
                id=worker_id,
                protocol=PROTOCOL,
                hostname=display_name or worker_key,
                capacity=1,
                status=WORKER_ACTIVE,
                registered_at=now,
                last_heartbeat_at=now,
                projects=[project.name],
                metadata={"implementation_kind": implementation_kind, "worker_key": worker_key},
                registration_id=registration_id,
            ),
            AgentWorkerRecord(
                worker_id=worker_id,
                project_id=project.id,
                project_name=project.name,
                implementation_kind=implementation_kind,
                worker_key=worker_key,
                token_hash=digest(token),
                created_at=now,
                updated_at=now,
                implementation_display_name=implementation_display_name,
                display_name=display_name,
                metadata=metadata,
            ),
        )
        return Registration(AgentWorker(worker, details), token)

    async def worker(self, worker_id: str) -> AgentWorker:
        """A worker registered over this protocol, in any status."""
        worker = await self.store.get_worker(worker_id)
        details = await self.store.get_agent_worker(worker_id)
        if worker is None or details is None:
            raise WorkerNotFound(worker_id)
        return AgentWorker(worker, details)

    async def worker_for_token(self, token: str) -> AgentWorker | None:
        """The worker a worker token belongs to, if the token is current."""
        if not token.startswith(WORKER_TOKEN_PREFIX):
            return None
        details = await self.store.find_agent_worker_by_token(digest(token))
        if details is None:
            return None
        worker = await self.store.get_worker(details.worker_id)
        return None if worker is None else AgentWorker(worker, details)

    async def heartbeat(self, worker_id: str) -> AgentWorker:
        return await self._touch(worker_id)

    async def _touch(self, worker_id: str) -> AgentWorker:
        """Record that a worker is alive (every worker call counts). A worker the reaper
        declared dead comes back, as re-registering would bring it (the runs it held were
        requeued and stay fenced); a deleted worker does not."""
        details = await self.store.get_agent_worker(worker_id)
        if details is None:
            raise WorkerNotFound(worker_id)
        now = self.clock.now_ms()
        worker = await self.store.touch_worker(worker_id, now, None)
        if worker is None:
            dead = await self.store.get_worker(worker_id)
            if dead is None or dead.status != WORKER_DEAD:
                raise WorkerNotFound(worker_id)
            revived = dataclasses.replace(dead, last_heartbeat_at=now, status=WORKER_ACTIVE)
            worker, details = await self.store.register_agent_worker(revived, details)
        return AgentWorker(worker, details)

    async def retire(self, worker_id: str) -> tuple[AgentWorker, list[str]]:
        """Deregister a worker; runs it holds go back to the queue at once."""
        await self.worker(worker_id)
        released = await self.dispatcher.deregister(worker_id)
        for session_id in released:
            session = await self.store.get_session(session_id)
            if session is not None:
                await self.dispatcher.notifier.notify(session.queue)
        return await self.worker(worker_id), released

    # -- producer side --

    async def admit(self, new: NewRun) -> Admission:
        project = project_ref(new.project_reference)
        if new.idempotency_key:
            existing = await self.store.find_run_by_idempotency(project.id, new.idempotency_key)
            if existing is not None:
                return Admission(await self._state_of(existing), duplicate=True)
        if new.run_id:
            existing = await self.store.get_run(new.run_id)
            if existing is not None:
                return await self._duplicate_run_id(existing, project)
        now = self.clock.now_ms()
        run_id = new.run_id or f"run_{uuid.uuid4()}"
        queue = run_queue(project.id, new.implementation_kind, new.worker_key)
        session = SessionRecord(
            id=new_session_id(),
            queue=queue,
            status=PENDING,
            priority=new.priority or DEFAULT_RUN_PRIORITY,
            queued_at=now,
            created_at=now,
            updated_at=now,
            project=project.name,
            title=new.title,
            prompt=_first_user_text(new.request_snapshot),
            work_type=new.implementation_kind,
            agent_id=new.agent_id or new.implementation_kind,
            extra={"protocol": PROTOCOL, "runId": run_id},
        )
        run = RunRecord(
            run_id=run_id,
            session_id=session.id,
            project_id=project.id,
            conversation_id=new.conversation_id or str(uuid.uuid4()),
            message_id=new.message_id or str(uuid.uuid4()),
            agent_id=new.agent_id or new.implementation_kind,
            implementation_kind=new.implementation_kind,
            worker_key=new.worker_key,
            request_snapshot=new.request_snapshot,
            idempotency_key=new.idempotency_key,
            created_at=now,
            updated_at=now,
        )
        created = SessionEvent(
            session_id=session.id, at=now, kind="status", status=PENDING, reason="run admitted"
        )
        if not await self.store.insert_run(session, run, created):
            # Lost a race with the same idempotency key or run id.
            if new.idempotency_key:
                existing = await self.store.find_run_by_idempotency(project.id, new.idempotency_key)
                if existing is not None:
                    return Admission(await self._state_of(existing), duplicate=True)
            existing = await self.store.get_run(run_id)
            if existing is None:
                raise Conflict(f"Run {run_id} could not be admitted; try again")
            return await self._duplicate_run_id(existing, project)
        await self.dispatcher.notifier.notify(queue)
        return Admission(RunState(run, session), duplicate=False)

    async def _duplicate_run_id(self, existing: RunRecord, project: ProjectRef) -> Admission:
        if existing.project_id != project.id:
            raise Conflict(f"Run {existing.run_id} already exists")
        return Admission(await self._state_of(existing), duplicate=True)

    # -- reads --

    async def state(self, run_id: str, conversation_id: str | None = None) -> RunState:
        run = await self.store.get_run(run_id)
        if run is None or (conversation_id is not None and run.conversation_id != conversation_id):
            raise RunNotFound(run_id)
        return await self._state_of(run)

    async def _state_of(self, run: RunRecord, session: SessionRecord | None = None) -> RunState:
        session = session or await self.store.get_session(run.session_id)
        if session is None:
            raise RunNotFound(run.run_id)
        worker_session = None
        if session.worker_id is not None:
            worker_session = await self.store.get_worker_session(run.run_id, session.worker_id)
        return RunState(run, session, worker_session)

    async def events(self, run_id: str, after_event_id: int, limit: int) -> list[RunEventRecord]:
        await self.state(run_id)
        return await self.store.list_run_events(run_id, after_event_id, limit)

    # -- lease holder --

    async def claim(self, worker_id: str, lease_seconds: int) -> RunState | None:
        """Lease the next run of the worker's implementation kind: its own worker key first,
        then runs admitted for any worker of the kind. None when nothing is claimable."""
        agent = await self._touch(worker_id)
        d = agent.details
        now = self.clock.now_ms()
        for key in (d.worker_key, None):
            claimed = await self.store.claim_next(
                run_queue(d.project_id, d.implementation_kind, key),
                worker_id,
                1,
                now,
                lease_expires_at=now + lease_seconds * 1000,
            )
            if claimed:
                run = await self.store.get_run_by_session(claimed[0].id)
                if run is None:  # a session in a run queue always has a run row
                    raise RunNotFound(claimed[0].id)
                return await self._state_of(run, claimed[0])
        return None

    def _holds(self, session: SessionRecord, worker_id: str | None, now: int) -> bool:
        return (
            session.is_live
            and session.lease_expires_at is not None
            and session.lease_expires_at >= now
            and (worker_id is None or session.worker_id == worker_id)
        )

    async def renew(self, worker_id: str, run_id: str, lease_seconds: int) -> RunState | None:
        """Extend the lease if the worker still holds it; None tells it to stop."""
        await self._touch(worker_id)
        state = await self.state(run_id)
        session = state.session
        now = self.clock.now_ms()
        if not self._holds(session, worker_id, now):
            return None
        updated = await self.store.update_session(
            session.id,
            Expect(worker_id, session.lease_epoch, LIVE_STATUSES, lease_valid_at=now),
            {"lease_expires_at": now + lease_seconds * 1000, "updated_at": now},
            None,
        )
        if updated is None:
            return None
        return await self._state_of(state.run, updated)

    async def record_session(
        self,
        worker_id: str,
        run_id: str,
        *,
        session_key: str,
        status: str | None,
        metadata: Any,
        metadata_given: bool,
    ) -> WorkerSessionRecord:
        """Upsert the worker's session for a run it holds (or held until it finished it)."""
        agent = await self._touch(worker_id)
        state = await self.state(run_id)
        session, now = state.session, self.clock.now_ms()
        finished_by_it = session.is_terminal and session.worker_id == worker_id
        if not (finished_by_it or self._holds(session, worker_id, now)):
            raise LeaseNotHeld(run_id)
        existing = await self.store.get_worker_session(run_id, worker_id)
        new_status = status or (existing.status if existing else "active")
        ended_at = None
        if new_status in SESSION_TERMINAL:
            ended_at = existing.ended_at if existing and existing.ended_at else now
        return await self.store.put_worker_session(
            WorkerSessionRecord(
                id=existing.id if existing else str(uuid.uuid4()),
                run_id=run_id,
                worker_id=worker_id,
                implementation_kind=agent.details.implementation_kind,
                session_key=session_key,
                status=new_status,
                created_at=existing.created_at if existing else now,
                updated_at=now,
                metadata=metadata if metadata_given or existing is None else existing.metadata,
                ended_at=ended_at,
            )
        )

    async def append(
        self,
        run_id: str,
        conversation_id: str,
        events: Sequence[Mapping[str, Any]],
        *,
        expected_external_sequence: int | None,
        expected_event_id: int | None,
        worker_id: str | None,
    ) -> RunState:
        """Append AG-UI events to a leased run. With `worker_id` (a worker's own token) the
        writer must be the lease holder; any writer needs a live, unexpired lease."""
        for _attempt in range(2):
            state = await self.state(run_id, conversation_id)
            now = self.clock.now_ms()
            self._check_appendable(state, worker_id, now)
            self._check_cursors(state.run, expected_external_sequence, expected_event_id)
            session = state.session
            run = await self.store.append_run_events(
                run_id,
                Expect(session.worker_id, session.lease_epoch, LIVE_STATUSES, lease_valid_at=now),
                events,
                now,
                expected_external_sequence=expected_external_sequence,
                expected_event_id=expected_event_id,
            )
            if run is not None:
                return RunState(run, session, state.worker_session)
            # The lease or a cursor moved between our read and our write: classify again.
        raise LeaseNotHeld(run_id)

    def _check_appendable(self, state: RunState, worker_id: str | None, now: int) -> None:
        if state.session.is_terminal:
            raise RunTerminal(state.run.run_id)
        if not self._holds(state.session, worker_id, now):
            raise LeaseNotHeld(state.run.run_id)

    @staticmethod
    def _check_cursors(
        run: RunRecord, expected_external: int | None, expected_event_id: int | None
    ) -> None:
        if (
            expected_external is not None
            and expected_external != run.latest_external_event_sequence
        ):
            raise CursorMismatch(
                "latest_external_event_sequence",
                expected_external,
                run.latest_external_event_sequence,
            )
        if expected_event_id is not None and expected_event_id != run.latest_event_id:
            raise CursorMismatch("latest_event_id", expected_event_id, run.latest_event_id)

    async def complete(
        self,
        run_id: str,
        status: str,
        *,
        terminal_error_code: str | None,
        terminal_error_message: str | None,
        metadata: dict[str, Any] | None,
        worker_id: str | None,
    ) -> RunState:
        """Finish a run as completed, failed or stopped (cancelled). Repeating the same
        terminal status is a no-op; a queued run may only be cancelled, and not by a worker."""
        if status not in TERMINAL_STATUSES:
            raise ValueError(status)
        for _attempt in range(2):
            state = await self.state(run_id)
            session, now = state.session, self.clock.now_ms()
            if session.is_terminal:
                if session.status == status:
                    return state
                raise Conflict("Run is already finished with another status")
            if session.status == PENDING and status == STOPPED and worker_id is None:
                expect = Expect(None, session.lease_epoch, (PENDING,))
            elif self._holds(session, worker_id, now):
                expect = Expect(
                    session.worker_id, session.lease_epoch, LIVE_STATUSES, lease_valid_at=now
                )
            else:
                raise LeaseNotHeld(run_id)
            finished = await self.store.finish_run(
                run_id,
                session.id,
                expect,
                {
                    "status": status,
                    "updated_at": now,
                    "lease_expires_at": None,
                    "error_message": terminal_error_message,
                },
                {
                    "terminal_error_code": terminal_error_code,
                    "terminal_error_message": terminal_error_message,
                    "completion_metadata": metadata,
                    "updated_at": now,
                },
                SessionEvent(
                    session_id=session.id,
                    at=now,
                    kind="status",
                    status=status,
                    worker_id=session.worker_id,
                    reason=terminal_error_code or terminal_error_message,
                ),
            )
            if finished is not None:
                return await self._state_of(finished[1], finished[0])
        raise LeaseNotHeld(run_id)


def _first_user_text(snapshot: dict[str, Any] | None) -> str | None:
    """The first user message's text, shown as the session's prompt in operator views."""
    for message in (snapshot or {}).get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            texts: list[str] = [
                str(p["text"])
                for p in message.get("parts") or []
                if isinstance(p, dict) and isinstance(p.get("text"), str)
            ]
            if texts:
                return "\n".join(texts)
    return None
