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
from shopfloor.service.audit import WORKER_REGISTERED, Who
from shopfloor.service.auth import digest
from shopfloor.service.counters import VERYFRONT
from shopfloor.service.dispatch import Dispatcher
from shopfloor.service.errors import (
    Conflict,
    ConversationNotFound,
    CursorMismatch,
    InvalidInput,
    LeaseNotHeld,
    RunNotFound,
    RunTerminal,
    RunWaitingForTool,
    WorkerNotFound,
)
from shopfloor.service.run_snapshot import snapshot_from_messages
from shopfloor.store.records import (
    COMPLETED,
    FAILED,
    LIVE_STATUSES,
    PENDING,
    STOPPED,
    TERMINAL_STATUSES,
    WORKER_ACTIVE,
    WORKER_DEAD,
    Expect,
    ProjectRecord,
    SessionEvent,
    SessionRecord,
    WorkerRecord,
)
from shopfloor.store.run_records import (
    AgentWorkerRecord,
    ConversationRecord,
    RunEventRecord,
    RunRecord,
    WorkerSessionRecord,
)
from shopfloor.store.tenancy_records import DEFAULT_ORG

PROTOCOL = "veryfront"
ANY_WORKER = "*"  # the worker-key part of the queue of runs any worker of the kind may claim
DEFAULT_RUN_PRIORITY = 3
WORKER_TOKEN_PREFIX = "vfw_"
SESSION_TERMINAL = ("completed", "failed", "cancelled")
# The worker session's status when its run ends with each session status.
_WORKER_SESSION_END = {COMPLETED: "completed", FAILED: "failed", STOPPED: "cancelled"}
RUN_KINDS = ("agent", "task", "workflow", "eval")
QUEUE_MAX_LENGTH = 200
SNAPSHOT_MAX_MESSAGES = 500  # the newest ones, when a conversation is longer
SAFE_INTEGER = 2**53 - 1  # token counts are shown to JavaScript clients
# Slugs map to stable UUIDs, so a project named by slug and by its UUID is one project.
_PROJECT_NAMESPACE = uuid.UUID("6f1c2a34-52b5-4d0e-9a57-0f9e4b1c7d21")
# A Veryfront project of an organisation other than the default one is recorded as a project
# of this kind (its id the project's UUID), so that its UUID is known to be that
# organisation's. A UUID without such a record is the default organisation's.
PROJECT_VERYFRONT = "veryfront"


@dataclass(frozen=True)
class ProjectRef:
    id: str  # a UUID, what the wire shows as project_id
    name: str  # the slug, or the UUID when referenced by UUID; sessions.project


def project_ref(reference: str, org_id: str = DEFAULT_ORG) -> ProjectRef:
    """A project referenced by UUID or by slug. Each organisation has its own slugs: the
    same slug names different projects in two organisations (the default organisation's
    UUIDs are those shopfloor always gave)."""
    try:
        parsed = uuid.UUID(reference)
    except ValueError:
        name = reference if org_id == DEFAULT_ORG else f"{org_id}/{reference}"
        return ProjectRef(str(uuid.uuid5(_PROJECT_NAMESPACE, name)), reference)
    return ProjectRef(str(parsed), str(parsed))


def is_slug(project: ProjectRef) -> bool:
    return project.name != project.id


def run_queue(project_id: str, implementation_kind: str, worker_key: str | None) -> str:
    queue = f"vf:{project_id}:{implementation_kind}:{worker_key or ANY_WORKER}"
    if len(queue) <= QUEUE_MAX_LENGTH:
        return queue
    # sessions.queue holds 200 characters; a long worker key is stood in for by its digest.
    return f"vf:{project_id}:{implementation_kind}:#{digest(worker_key or '')[:32]}"


def watch_key(run_id: str) -> str:
    """The topic a run's followers wait on; it is published whenever the run changes."""
    return f"veryfront-run:{run_id}"


@dataclass(frozen=True)
class NewRun:
    """A run to admit. Its project is `project_reference`, or for a conversation-owned run
    the conversation's project; its queue is that of `implementation_kind`, or without one
    that of its `kind` (workers registered with implementation kind `task` claim task
    runs, and so on)."""

    project_reference: str | None
    implementation_kind: str | None = None
    worker_key: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    conversation_id: str | None = None
    message_id: str | None = None
    request_snapshot: dict[str, Any] | None = None
    idempotency_key: str | None = None
    priority: int | None = None
    title: str | None = None
    kind: str = "agent"
    owner_kind: str = "project"  # or "conversation" (conversation_id)
    parent_run_id: str | None = None
    spec: dict[str, Any] | None = None  # the canonical request's other fields

    @property
    def queue_kind(self) -> str:
        return self.implementation_kind or self.kind


@dataclass(frozen=True)
class Completion:
    """How a run ended, as its worker reported it."""

    status: str  # a session status: completed, failed or stopped
    terminal_error_code: str | None = None
    terminal_error_message: str | None = None
    metadata: dict[str, Any] | None = None  # provider, model, inputTokens, outputTokens, …
    output: Any = None


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

    # -- projects --

    async def project_org(self, project_id: str) -> str:
        """The organisation a project UUID belongs to (remembered by each process)."""
        return await self.dispatcher.project_org(project_id) or DEFAULT_ORG

    async def record_project(self, project: ProjectRef, org_id: str) -> None:
        """Note a project named by slug in `org_id` as that organisation's, before anything
        is made in it, so that its UUID names it from then on."""
        if org_id == DEFAULT_ORG or not is_slug(project):
            return
        if await self.dispatcher.project_org(project.id) is not None:
            return
        now = self.clock.now_ms()
        await self.store.insert_project_if_missing(
            ProjectRecord(
                id=project.id,
                kind=PROJECT_VERYFRONT,
                name=project.name,
                created_at=now,
                updated_at=now,
                org_id=org_id,
            )
        )

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
        actor: Who | None = None,
        org_id: str = DEFAULT_ORG,
    ) -> Registration:
        """Register (or re-register: same project, kind and key) a worker of `org_id`'s
        project; a fresh token replaces any earlier one. `registration_id`: the registration
        token it registered with, whose revocation revokes the worker's token too."""
        project = project_ref(project_reference, org_id)
        await self.record_project(project, org_id)
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
                org_id=org_id,
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
        audit = self.dispatcher.audit
        if audit is not None:
            facts = {"hostname": worker.hostname, "protocol": PROTOCOL, "projects": worker.projects}
            by = actor or Who("worker-key", "worker")
            await audit.record(worker.org_id, WORKER_REGISTERED, by, ("worker", worker.id), facts)
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
        found = await self.store.find_agent_worker_and_worker_by_token(digest(token))
        if found is None:
            return None
        details, worker = found
        return AgentWorker(worker, details)

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

    async def admission_project(
        self, new: NewRun, default_project: str | None, org_id: str | None = None
    ) -> tuple[ProjectRef, ConversationRecord | None]:
        """The project a run would be admitted into, read without writing anything: a linked
        conversation's project, else the named project, else `default_project`. Slugs are
        the conversation's organisation's, else `org_id`'s (the caller's; None: any
        organisation, slugs the default one's); another organisation's conversation does
        not exist here."""
        conversation = None
        if new.owner_kind == "conversation" and new.conversation_id is not None:
            conversation = await self.store.get_conversation(new.conversation_id)
            if conversation is not None and (
                conversation.deleted_at is not None
                or (org_id is not None and conversation.org_id != org_id)
            ):
                raise ConversationNotFound(new.conversation_id)
        slug_org = conversation.org_id if conversation else (org_id or DEFAULT_ORG)
        if conversation is not None and conversation.project_id is not None:
            if new.project_reference:
                named = project_ref(new.project_reference, slug_org)
                if named.id != conversation.project_id:
                    raise Conflict("The conversation belongs to another project")
            name = conversation.project_name or conversation.project_id
            return ProjectRef(conversation.project_id, name), conversation
        reference = new.project_reference or default_project
        if reference is None:
            raise InvalidInput("project_id", "project_id is required (a project UUID or slug)")
        return project_ref(reference, slug_org), conversation

    async def admit(
        self,
        new: NewRun,
        project: ProjectRef,
        conversation: ConversationRecord | None = None,
        org_id: str = DEFAULT_ORG,
    ) -> Admission:
        """Queue a run in `project`, of organisation `org_id` (from admission_project, after
        the caller's access to it was checked). A conversation-owned run's conversation is
        created if it does not exist yet, and linked to the project if it has none."""
        await self.record_project(project, org_id)
        if new.idempotency_key:
            existing = await self.store.find_run_by_idempotency(project.id, new.idempotency_key)
            if existing is not None:
                return Admission(await self._state_of(existing), duplicate=True)
        if new.run_id:
            existing = await self.store.get_run(new.run_id)
            if existing is not None:
                return await self._duplicate_run_id(existing, project)
        root = await self._root_of(new.parent_run_id, project)
        now = self.clock.now_ms()
        conversation_id, message_id = new.conversation_id, new.message_id
        if new.owner_kind == "conversation":
            conversation = await self._own_conversation(new, project, conversation, now, org_id)
            conversation_id = conversation.id
            message_id = message_id or await self._latest_user_message(conversation.id)
        run_id = new.run_id or f"run_{uuid.uuid4()}"
        queue = run_queue(project.id, new.queue_kind, new.worker_key)
        snapshot = new.request_snapshot
        if snapshot is None and new.kind != "agent":
            snapshot = _task_snapshot(new)
        spec = new.spec or {}
        agent_id = new.agent_id or spec.get("target") or new.queue_kind
        session = SessionRecord(
            id=new_session_id(),
            queue=queue,
            status=PENDING,
            priority=new.priority or DEFAULT_RUN_PRIORITY,
            queued_at=now,
            created_at=now,
            updated_at=now,
            project=project.name,
            title=new.title or spec.get("name"),
            prompt=_first_user_text(snapshot) or spec.get("target"),
            work_type=new.queue_kind,
            agent_id=agent_id,
            extra={"protocol": PROTOCOL, "runId": run_id, "runKind": new.kind},
            org_id=org_id,
        )
        run = RunRecord(
            run_id=run_id,
            session_id=session.id,
            project_id=project.id,
            conversation_id=conversation_id or str(uuid.uuid4()),
            message_id=message_id or str(uuid.uuid4()),
            agent_id=agent_id,
            implementation_kind=new.queue_kind,
            worker_key=new.worker_key,
            request_snapshot=snapshot,
            idempotency_key=new.idempotency_key,
            created_at=now,
            updated_at=now,
            kind=new.kind,
            owner_kind=new.owner_kind,
            parent_run_id=new.parent_run_id,
            root_run_id=root,
            spec=new.spec,
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

    async def _root_of(self, parent_run_id: str | None, project: ProjectRef) -> str | None:
        if parent_run_id is None:
            return None
        parent = await self.store.get_run(parent_run_id)
        if parent is None or parent.project_id != project.id:
            raise InvalidInput("parent_run_id", "parent_run_id must name a run of this project")
        return parent.root_run_id or parent.run_id

    async def _own_conversation(
        self,
        new: NewRun,
        project: ProjectRef,
        conversation: ConversationRecord | None,
        now: int,
        org_id: str,
    ) -> ConversationRecord:
        """The run's conversation, created on first use and linked to the run's project."""
        if conversation is None:
            conversation = ConversationRecord(
                id=new.conversation_id or str(uuid.uuid4()),
                created_at=now,
                updated_at=now,
                project_id=project.id,
                project_name=project.name,
                org_id=org_id,
            )
            if await self.store.insert_conversation(conversation):
                return conversation
            conversation = await self.store.get_conversation(conversation.id)
            if conversation is None:
                raise Conflict("The conversation changed concurrently; try again")
        if conversation.project_id is None:
            linked = await self.store.update_conversation(
                conversation.id,
                {"project_id": project.id, "project_name": project.name, "updated_at": now},
                unlinked_only=True,
            )
            conversation = linked or await self.store.get_conversation(conversation.id)
            if conversation is None or conversation.deleted_at is not None:
                raise ConversationNotFound(new.conversation_id or "")
        if conversation.project_id != project.id or conversation.org_id != org_id:
            raise Conflict("The conversation belongs to another project")
        return conversation

    async def _latest_user_message(self, conversation_id: str) -> str | None:
        found = await self.store.list_messages(conversation_id, limit=1, newest=True, role="user")
        return found[0].id if found else None

    async def _duplicate_run_id(self, existing: RunRecord, project: ProjectRef) -> Admission:
        if existing.project_id != project.id:
            raise Conflict(f"Run {existing.run_id} already exists")
        return Admission(await self._state_of(existing), duplicate=True)

    # -- reads --

    async def state(self, run_id: str, conversation_id: str | None = None) -> RunState:
        found = await self.store.get_run_state(run_id)
        if found is None or (
            conversation_id is not None and found[0].conversation_id != conversation_id
        ):
            raise RunNotFound(run_id)
        return RunState(*found)

    async def _state_of(self, run: RunRecord, session: SessionRecord | None = None) -> RunState:
        session = session or await self.store.get_session(run.session_id)
        if session is None:
            raise RunNotFound(run.run_id)
        worker_session = None
        if session.worker_id is not None:
            worker_session = await self.store.get_worker_session(run.run_id, session.worker_id)
        return RunState(run, session, worker_session)

    async def events(self, run_id: str, after_event_id: int, limit: int) -> list[RunEventRecord]:
        return await self.store.list_run_events(run_id, after_event_id, limit)

    async def list_runs(
        self, project_id: str, before: tuple[int, str] | None, limit: int
    ) -> list[RunState]:
        """A project's runs, newest first (without their worker sessions)."""
        found = await self.store.list_project_runs(project_id, before, limit)
        return [RunState(run, session) for run, session in found]

    async def changed(self, run_id: str) -> None:
        """Wake whoever follows the run (its SSE streams, on every server process)."""
        await self.dispatcher.notifier.publish(watch_key(run_id))

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
                run = await self._started(run, now)
                self.dispatcher.counters.count_claims(VERYFRONT, claimed[:1], now)
                await self.changed(run.run_id)
                return await self._state_of(run, claimed[0])
        return None

    async def _started(self, run: RunRecord, now: int) -> RunRecord:
        """At the first claim: started_at, and for a conversation's run without a request
        snapshot one built from the conversation's messages (kept for any re-claim)."""
        if run.started_at is not None:
            return run
        changes: dict[str, Any] = {"started_at": now}
        if run.owner_kind == "conversation" and run.request_snapshot is None:
            messages = await self._snapshot_messages(run)
            changes["request_snapshot"] = snapshot_from_messages(messages)
        started = await self.store.update_run(run.run_id, changes, where_null=("started_at",))
        return started or await self._run(run.run_id)

    async def _snapshot_messages(self, run: RunRecord) -> list[Any]:
        """The conversation's messages up to the one the run was admitted for (all of them if
        that one is not in the conversation), at most the newest SNAPSHOT_MAX_MESSAGES."""
        trigger = await self.store.get_message(run.conversation_id, run.message_id)
        return await self.store.list_messages(
            run.conversation_id,
            before_seq=None if trigger is None else trigger.seq + 1,
            limit=SNAPSHOT_MAX_MESSAGES,
            newest=True,
        )

    async def _run(self, run_id: str) -> RunRecord:
        run = await self.store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    def holds(self, session: SessionRecord, worker_id: str | None, now: int) -> bool:
        """Whether the session is leased and unexpired (to `worker_id`, if one is given)."""
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
        if not self.holds(session, worker_id, now):
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
        if not (finished_by_it or self.holds(session, worker_id, now)):
            raise LeaseNotHeld(run_id)
        existing = await self.store.get_worker_session(run_id, worker_id)
        new_status = status or (existing.status if existing else "active")
        if session.is_terminal and new_status not in SESSION_TERMINAL:
            # The run has ended, and its sessions with it: they do not become active again.
            new_status = existing.status if existing else _WORKER_SESSION_END[session.status]
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
        state: RunState | None = None,
    ) -> RunState:
        """Append AG-UI events to a leased run. With `worker_id` (a worker's own token) the
        writer must be the lease holder; any writer needs a live, unexpired lease. `state`:
        the run as the caller just read it (`state(run_id, conversation_id)`), to classify
        the first attempt by; the write is fenced on it whatever its age."""
        for _attempt in range(2):
            if state is None:
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
                # New events only: a wake-up is sent only if someone watches the run.
                await self.dispatcher.live.publish(watch_key(run_id))
                return RunState(run, session, state.worker_session)
            # The lease, a cursor or the waiting state moved between our read and our write:
            # classify again.
            state = None
        raise LeaseNotHeld(run_id)

    def _check_appendable(self, state: RunState, worker_id: str | None, now: int) -> None:
        if state.session.is_terminal:
            raise RunTerminal(state.run.run_id)
        if not self.holds(state.session, worker_id, now):
            raise LeaseNotHeld(state.run.run_id)
        if state.run.waiting_tool_call_id is not None:
            raise RunWaitingForTool(state.run.run_id)

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

    async def complete(self, run_id: str, done: Completion, worker_id: str | None) -> RunState:
        """Finish a run as completed, failed or stopped (cancelled). Repeating the same
        terminal status is a no-op; a queued run may only be cancelled, and not by a worker.
        The run's worker session ends with it, and its open input requests are cancelled."""
        if done.status not in TERMINAL_STATUSES:
            raise ValueError(done.status)
        for _attempt in range(2):
            state = await self.state(run_id)
            session, now = state.session, self.clock.now_ms()
            if session.is_terminal:
                if session.status == done.status:
                    return state
                raise Conflict("Run is already finished with another status")
            if session.status == PENDING and done.status == STOPPED and worker_id is None:
                expect = Expect(None, session.lease_epoch, (PENDING,))
            elif self.holds(session, worker_id, now):
                expect = Expect(
                    session.worker_id, session.lease_epoch, LIVE_STATUSES, lease_valid_at=now
                )
            else:
                raise LeaseNotHeld(run_id)
            finished = await self._finish(state, expect, done, now, done.terminal_error_code)
            if finished is not None:
                return finished
        raise LeaseNotHeld(run_id)

    async def cancel(self, run_id: str) -> tuple[bool, RunState]:
        """A person cancels a run: a queued or running one ends `cancelled` at once, whoever
        holds its lease (the holder's writes are refused from then on). (False, run) if it
        had already ended."""
        for _attempt in range(3):
            state = await self.state(run_id)
            session, now = state.session, self.clock.now_ms()
            if session.is_terminal:
                return False, state
            expect = Expect(session.worker_id, session.lease_epoch, (session.status,))
            finished = await self._finish(
                state, expect, Completion(STOPPED), now, "cancelled by user"
            )
            if finished is not None:
                return True, finished
        raise Conflict("The run changed concurrently; try again")

    async def _finish(
        self, state: RunState, expect: Expect, done: Completion, now: int, reason: str | None
    ) -> RunState | None:
        session = state.session
        finished = await self.store.finish_run(
            state.run.run_id,
            session.id,
            expect,
            _session_ending(done, now),
            {
                "terminal_error_code": done.terminal_error_code,
                "terminal_error_message": done.terminal_error_message,
                "completion_metadata": done.metadata,
                "output": done.output,
                "waiting_tool_call_id": None,
                "waiting_tool_name": None,
                "completed_at": now,
                "updated_at": now,
            },
            SessionEvent(
                session_id=session.id,
                at=now,
                kind="status",
                status=done.status,
                worker_id=session.worker_id,
                reason=reason or done.terminal_error_message,
            ),
            worker_session_status=_WORKER_SESSION_END[done.status],
        )
        if finished is None:
            return None
        await self.changed(state.run.run_id)
        return await self._state_of(finished[1], finished[0])


def _session_ending(done: Completion, now: int) -> dict[str, Any]:
    """The session row's terminal change: what the operator views show of the ending (the
    token counts, and provider, model and finish reason as metadata)."""
    changes: dict[str, Any] = {
        "status": done.status,
        "updated_at": now,
        "lease_expires_at": None,
        "error_message": done.terminal_error_message,
    }
    meta = done.metadata or {}
    for key, column in (("inputTokens", "input_tokens"), ("outputTokens", "output_tokens")):
        value = meta.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= SAFE_INTEGER:
            changes[column] = value
    shown = {
        name: str(meta[key])[:200]
        for key, name in (
            ("provider", "provider"),
            ("model", "model"),
            ("finishReason", "finishReason"),
        )
        if isinstance(meta.get(key), str)
    }
    if done.terminal_error_code:
        shown["terminalErrorCode"] = done.terminal_error_code
    if shown:
        changes["metadata"] = shown
    return changes


def _task_snapshot(new: NewRun) -> dict[str, Any]:
    """A task, workflow or eval run's snapshot: no messages, and what to run under
    forwardedProps.run (the worker client's run schema keeps forwardedProps as it is)."""
    spec = {k: v for k, v in (new.spec or {}).items() if v is not None}
    return {
        "messages": [],
        "tools": [],
        "context": [],
        "forwardedProps": {"run": {"kind": new.kind, **spec}},
    }


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
