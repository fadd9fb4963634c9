"""The queue engine: enqueue, claim, status transitions, requeue. No HTTP and no SQL here."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shopfloor.clock import Clock
from shopfloor.ids import new_session_id, new_worker_id
from shopfloor.service.actors import ANYONE, Actor
from shopfloor.service.audit import (
    SESSION_TRANSFERRED,
    SYSTEM,
    WORKER_DECLARED_DEAD,
    WORKER_REGISTERED,
    AuditLog,
    Who,
    outbox_fact,
)
from shopfloor.service.channel import MESSAGES_PER_LANE, SessionChannel, by_session
from shopfloor.service.counters import AGENTFACTORY as CLAIMED_BY_AGENTFACTORY
from shopfloor.service.counters import (
    BY_HEARTBEAT_UNDERCOUNT,
    BY_LEASE_EXPIRED,
    BY_NACKED,
    BY_REGISTRATION_REVOKED,
    BY_WORKER_DEAD,
    BY_WORKER_DEREGISTERED,
    EngineCounters,
)
from shopfloor.service.counters import WORKER_DEAD as ENDED_BY_SILENCE
from shopfloor.service.counters import WORKER_DEREGISTERED as ENDED_BY_DEREGISTRATION
from shopfloor.service.counters import WORKER_REVOKED as ENDED_BY_REVOCATION
from shopfloor.service.errors import (
    Conflict,
    InvalidTransition,
    NotOwner,
    SessionNotFound,
    WorkerNotFound,
)
from shopfloor.service.live_feed import LiveFeeds
from shopfloor.service.notifier import LocalNotifier, Notifier, cancel_wait
from shopfloor.service.queue_history import QueueHistory
from shopfloor.service.timeline_follow import timeline_topic
from shopfloor.store import Store
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.git_records import ProjectDefaultsRecord
from shopfloor.store.records import (
    CLAIMED,
    FINALIZING,
    LIVE_STATUSES,
    PENDING,
    RUNNING,
    STOPPED,
    TERMINAL_STATUSES,
    WORKER_ACTIVE,
    WORKER_DEAD,
    WORKER_DEREGISTERED,
    Expect,
    InboxMessage,
    SessionEvent,
    SessionFilter,
    SessionRecord,
    WorkerPoll,
    WorkerRecord,
)
from shopfloor.store.tenancy_records import DEFAULT_ORG, ApiKeyRecord

AGENTFACTORY_QUEUE = "agentfactory"


def af_queue(org_id: str) -> str:
    """The AgentFactory queue of an organisation: its workers poll only their own."""
    return AGENTFACTORY_QUEUE if org_id == DEFAULT_ORG else f"{AGENTFACTORY_QUEUE}:{org_id}"


MAX_ITEMS_PER_POLL = 5

# Default priority by work type (lower runs first), as the AgentFactory defaults give it.
_WORK_TYPE_PRIORITY = {
    "qa": 2,
    "acceptance": 2,
    "refinement": 2,
    "refinement-coordination": 2,
    "inflight": 2,
    "development": 3,
    "backlog-creation": 3,
    "research": 4,
}
DEFAULT_PRIORITY = 3


WORK_TYPES: tuple[str, ...] = tuple(_WORK_TYPE_PRIORITY)


def default_priority(work_type: str | None) -> int:
    return _WORK_TYPE_PRIORITY.get(work_type or "", DEFAULT_PRIORITY)


# What a lease holder may report from each live status. Repeats are always accepted: the
# AgentFactory worker sends `running` several times and `finalizing` before every terminal.
_NEXT: dict[str, frozenset[str]] = {
    CLAIMED: frozenset({RUNNING, FINALIZING, *TERMINAL_STATUSES}),
    RUNNING: frozenset({RUNNING, FINALIZING, *TERMINAL_STATUSES}),
    FINALIZING: frozenset({FINALIZING, *TERMINAL_STATUSES}),
}


@dataclass(frozen=True)
class NewSession:
    queue: str = AGENTFACTORY_QUEUE
    session_id: str | None = None
    issue_id: str | None = None
    issue_identifier: str | None = None
    title: str | None = None
    description: str | None = None
    prompt: str | None = None
    work_type: str | None = None
    priority: int | None = None
    project: str | None = None
    repository: str | None = None
    agent_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    labels: list[str] | None = None  # issue labels the issue-tracker proxy serves
    metadata: dict[str, str] | None = None
    provider_session_id: str | None = None  # a provider session the worker should resume
    org_id: str = DEFAULT_ORG
    created_by: Who | None = None  # who the audit log names (None: the server itself)


@dataclass(frozen=True)
class StatusReport:
    status: str
    provider_session_id: str | None = None
    worktree_path: str | None = None
    error_message: str | None = None
    total_cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Poll:
    claimed: list[SessionRecord]
    inbox: dict[str, list[InboxMessage]]  # unacknowledged messages, by session id


@dataclass(frozen=True)
class ClaimOutcome:
    claimed: bool
    session: SessionRecord | None = None
    reason: str | None = None


@dataclass(frozen=True)
class TransferOutcome:
    transferred: bool
    session: SessionRecord | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ReapReport:
    dead_workers: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)  # parked sessions whose issue lock freed


class Dispatcher:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        worker_ttl_seconds: float,
        claim_ttl_seconds: float = 120.0,
        notifier: Notifier | None = None,
        issue_lock_ttl_seconds: float = 7200.0,
        file_lock_ttl_seconds: float = 3600.0,
        poll_hold_ms: int = 0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.notifier: Notifier = notifier or LocalNotifier()
        self.live = LiveFeeds(self.notifier)  # this process's shared readers of live streams
        store.observers.timeline_written.append(lambda sid: self.live.poke(timeline_topic(sid)))
        self.worker_ttl_ms = int(worker_ttl_seconds * 1000)
        # An idle worker's empty poll waits up to this long for work to arrive (see poll).
        self.poll_hold_ms = poll_hold_ms
        # A pre-claimed session must be reported `running` within this time, or it goes back
        # to the queue: this recovers a claim whose poll reply never reached the worker.
        self.claim_ttl_ms = int(claim_ttl_seconds * 1000)
        self.counters = EngineCounters()
        store.observers.session_ended.append(self.counters.count_end)
        self.queue_history = QueueHistory(store, clock)  # the console's queue charts
        self.counters.on_claimed.append(self.queue_history.record)
        # Set by the app: where session creations and transfers are recorded.
        self.audit: AuditLog | None = None
        self._worker_orgs: dict[str, str] = {}
        self._project_orgs: dict[str, str] = {}
        self.channel = SessionChannel(
            store,
            clock,
            self.notifier,
            issue_lock_ttl_seconds=issue_lock_ttl_seconds,
            file_lock_ttl_seconds=file_lock_ttl_seconds,
        )

    # -- producer side --

    async def create_session(self, new: NewSession) -> SessionRecord:
        now = self.clock.now_ms()
        extra = await self._with_project_defaults(new)
        issue_id = new.issue_id or new.issue_identifier
        session = SessionRecord(
            id=new.session_id or new_session_id(),
            queue=new.queue,
            status=PENDING,
            priority=new.priority if new.priority is not None else default_priority(new.work_type),
            queued_at=now,
            created_at=now,
            updated_at=now,
            project=new.project,
            issue_id=issue_id,
            issue_identifier=new.issue_identifier or issue_id,
            title=new.title,
            description=new.description,
            prompt=new.prompt,
            work_type=new.work_type,
            repository=new.repository,
            agent_id=new.agent_id,
            extra=extra,
            metadata=new.metadata,
            provider_session_id=new.provider_session_id,
            org_id=new.org_id,
        )
        try:
            # One live session per issue: a session for a locked issue is stored parked.
            # The session.created audit fact (queue, issueId, status) is written with it.
            who = new.created_by or SYSTEM
            session = await self.store.insert_session_with_issue_lock(
                session,
                SessionEvent(
                    session_id=session.id, at=now, kind="status", status=PENDING, reason="created"
                ),
                self.channel.lock_expiry(),
                None if self.audit is None else (who.id, who.type),
            )
        except DuplicateKey:
            raise Conflict(f"Session {session.id} already exists") from None
        await self.channel.sync_issue(session, new.labels)
        if session.status == PENDING:
            await self.notifier.notify(session.queue)
        return session

    async def project_defaults(self, org_id: str, project: str) -> ProjectDefaultsRecord | None:
        return await self.store.get_project_defaults(org_id, project)

    async def set_project_defaults(self, record: ProjectDefaultsRecord) -> None:
        """Replace a project's defaults (no fields: remove them)."""
        await self.store.put_project_defaults(record)

    async def _with_project_defaults(self, new: NewSession) -> dict[str, Any]:
        """The session's work-item fields, with its project's defaults for those it leaves
        unset (the agent a Go daemon runs, chosen once per project)."""
        if new.project is None:
            return new.extra
        defaults = await self.project_defaults(new.org_id, new.project)
        if defaults is None:
            return new.extra
        return {**defaults.fields, **new.extra}

    async def get_session(self, session_id: str) -> SessionRecord:
        session = await self.store.get_session(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    async def list_sessions(self, flt: SessionFilter) -> list[SessionRecord]:
        return await self.store.list_sessions(flt)

    async def visible_session(self, session_id: str, actor: Actor) -> SessionRecord:
        """The session, if the actor may touch its project; to anyone else it does not exist."""
        session = await self.store.get_session(session_id)
        if session is None or not actor.may_touch(session.org_id, session.project):
            raise SessionNotFound(session_id)
        return session

    async def history(self, session_id: str) -> list[SessionEvent]:
        await self.get_session(session_id)
        return await self.store.session_events(session_id, kinds=["status"])

    # -- workers --

    async def register_worker(
        self,
        *,
        hostname: str,
        capacity: int,
        version: str | None,
        projects: list[str] | None,
        machine_id: str | None = None,
        registration: ApiKeyRecord | None = None,
        protocol: str = "agentfactory",
        metadata: dict[str, Any] | None = None,
    ) -> WorkerRecord:
        if registration is not None and registration.projects is not None:
            projects = registration.projects  # a project-scoped token pins the worker to them
        now = self.clock.now_ms()
        worker = WorkerRecord(
            id=new_worker_id(),
            protocol=protocol,
            hostname=hostname,
            capacity=capacity,
            status=WORKER_ACTIVE,
            registered_at=now,
            last_heartbeat_at=now,
            version=version,
            projects=projects,
            machine_id=machine_id,
            registration_id=registration.id if registration else None,
            metadata=metadata or {},
            org_id=registration.org_id if registration else DEFAULT_ORG,
        )
        await self.store.insert_worker(worker)
        if self.audit is not None:
            by = Who(registration.id, "api_key") if registration else Who("worker-key", "worker")
            details = {"hostname": hostname, "protocol": protocol, "projects": projects}
            await self.audit.record(
                worker.org_id, WORKER_REGISTERED, by, ("worker", worker.id), details
            )
        return worker

    async def worker_org(self, worker_id: str) -> str | None:
        """A worker's organisation (None for an unknown worker). A worker never changes
        organisation, so each process remembers it after the first read."""
        org = self._worker_orgs.get(worker_id)
        if org is None:
            worker = await self.store.get_worker(worker_id)
            if worker is None:
                return None
            org = self._worker_orgs[worker_id] = worker.org_id
        return org

    async def project_org(self, project_id: str) -> str | None:
        """A project's (an environment's) organisation, None for an unknown one; remembered
        like worker_org."""
        org = self._project_orgs.get(project_id)
        if org is None:
            project = await self.store.get_project(project_id)
            if project is None:
                return None
            org = self._project_orgs[project_id] = project.org_id
        return org

    async def active_worker(self, worker_id: str) -> WorkerRecord:
        worker = await self.store.get_worker(worker_id)
        if worker is None or worker.status != WORKER_ACTIVE:
            raise WorkerNotFound(worker_id)
        return worker

    async def heartbeat(self, worker_id: str, active_count: int | None) -> WorkerRecord:
        now = self.clock.now_ms()
        worker = await self.store.touch_worker(worker_id, now, active_count)
        if worker is None:
            raise WorkerNotFound(worker_id)
        if active_count is not None:
            await self._reconcile(worker, active_count, now)
        return worker

    async def _reconcile(self, worker: WorkerRecord, active_count: int, now: int) -> list[str]:
        """Compare what a heartbeat says the worker runs with the sessions it has started
        here (running or finalizing; a claimed one has the claim TTL). When it says fewer, for
        longer than the worker TTL, the sessions it has not written to since it began to say
        so are lost to it (an agent that died without a word, a worker that restarted under
        the same id): the longest silent of them, as many as are missing, go back to the
        queue. Returns their ids."""
        started = [s for s in await self.store.live_sessions_of(worker.id) if s.status != CLAIMED]
        if active_count >= len(started):
            if worker.undercount_since is not None:
                await self.store.mark_undercount(worker.id, None)
            return []
        since = worker.undercount_since
        if since is None:
            await self.store.mark_undercount(worker.id, now)
            return []
        if now - since < self.worker_ttl_ms:
            return []
        silent = []
        for session in started:
            written = await self.store.last_written_at(session.id, worker.id) or 0
            last_sign = max(session.updated_at, written)
            if last_sign < since:
                silent.append((last_sign, session))
        silent.sort(key=lambda pair: pair[0])
        missing = len(started) - active_count
        reason = (
            f"worker {worker.id} reported {active_count} active sessions while holding "
            f"{len(started)}; this one had been silent for"
        )
        requeued = []
        for last_sign, session in silent[:missing]:
            why = f"{reason} {(now - last_sign) // 1000}s"
            if await self._requeue_or_none(session, why, BY_HEARTBEAT_UNDERCOUNT) is not None:
                requeued.append(session.id)
        await self.store.mark_undercount(worker.id, None)
        return requeued

    async def pending_count(self, queue: str = AGENTFACTORY_QUEUE) -> int:
        return await self.store.count_pending(queue)

    async def poll(
        self,
        worker_id: str,
        disconnected: Callable[[], Awaitable[object]] | None = None,
        queue: str = AGENTFACTORY_QUEUE,
    ) -> Poll:
        """Pop and pre-claim up to min(free capacity, 5) sessions for the worker, and deliver
        the inbox of the sessions it holds.

        A poll that finds nothing for a worker with free capacity is held up to
        `poll_hold_ms`: an enqueue wakes it and it claims at once, so an arrival need not
        wait for some worker's next poll (seconds apart by the protocol). The client cannot
        tell a held poll from a slow one. `disconnected`, if given, finishes when the caller
        has gone; a held poll then ends without claiming. `queue`: the worker's organisation's
        AgentFactory queue (af_queue)."""
        polled = await self._poll_once(worker_id, queue)
        if self.poll_hold_ms <= 0 or _nothing_to_wait_for(polled):
            return Poll(polled.claimed, by_session(polled.inbox))
        return await self._hold(worker_id, disconnected, queue)

    async def _hold(
        self,
        worker_id: str,
        disconnected: Callable[[], Awaitable[object]] | None,
        queue: str,
    ) -> Poll:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.poll_hold_ms / 1000
        gone = None if disconnected is None else asyncio.ensure_future(disconnected())
        waiter: asyncio.Future[bool] | None = None
        try:
            while True:
                # Listen before looking, so an enqueue between the look and the wait wakes us.
                # A poll woken at the end of its hold still looks once more.
                remaining = deadline - loop.time()
                waiter = None
                if remaining > 0:
                    waiter = asyncio.ensure_future(self.notifier.wait(queue, remaining))
                    await asyncio.sleep(0)
                polled = await self._poll_once(worker_id, queue)
                if waiter is None or _nothing_to_wait_for(polled):
                    if waiter is not None:
                        await cancel_wait(waiter)
                    return Poll(polled.claimed, by_session(polled.inbox))
                await asyncio.wait([f for f in (waiter, gone) if f], return_when="FIRST_COMPLETED")
                if gone is not None and gone.done():
                    # A wake-up this poll cannot use goes on to another held poll: passed on
                    # here if it came before the cancel, by the notifier if it came after.
                    await cancel_wait(waiter)
                    if not waiter.cancelled() and waiter.result():
                        await self.notifier.notify(queue)
                    return Poll([], {})
                if not waiter.result():
                    return Poll([], {})
        finally:
            # A poll that failed or was cancelled mid-hold stops listening, so that no
            # wake-up goes to it (asyncio.wait does not cancel what it waits for).
            if waiter is not None and not waiter.done():
                await cancel_wait(waiter)
            if gone is not None:
                await cancel_wait(gone)

    async def _poll_once(self, worker_id: str, queue: str) -> WorkerPoll:
        now = self.clock.now_ms()
        polled = await self.store.poll_worker(
            queue,
            worker_id,
            MAX_ITEMS_PER_POLL,
            now,
            now + self.claim_ttl_ms,
            MESSAGES_PER_LANE,
        )
        if polled is None:
            raise WorkerNotFound(worker_id)
        if polled.claimed:
            self.counters.count_claims(CLAIMED_BY_AGENTFACTORY, polled.claimed, now)
        return polled

    async def claim(self, session_id: str, worker_id: str) -> ClaimOutcome:
        """The legacy per-item claim. Idempotent for the worker that already holds it."""
        worker = await self.active_worker(worker_id)
        session = await self.store.get_session(session_id)
        if session is None:
            return ClaimOutcome(False, reason="Session state expired, work item dropped")
        if session.worker_id == worker.id and session.status == CLAIMED:
            return ClaimOutcome(True, session)
        if session.status != PENDING:
            return ClaimOutcome(False, reason="Work item not available or already claimed")
        if worker.projects and session.project not in worker.projects:
            return ClaimOutcome(
                False, reason=f"Worker not authorized for project {session.project}"
            )
        now = self.clock.now_ms()
        claimed = await self.store.claim_session(
            session_id, session.queue, worker.id, now, lease_expires_at=now + self.claim_ttl_ms
        )
        if claimed is None:
            return ClaimOutcome(False, reason="Work item not available or already claimed")
        self.counters.count_claims(CLAIMED_BY_AGENTFACTORY, [claimed], now)
        return ClaimOutcome(True, claimed)

    # -- lease holder reports --

    async def owned_session(self, session_id: str, worker_id: str) -> SessionRecord:
        session = await self.get_session(session_id)
        if session.worker_id != worker_id:
            raise NotOwner(session_id)
        return session

    async def report_status(
        self, session_id: str, worker_id: str, report: StatusReport
    ) -> SessionRecord:
        if report.status in TERMINAL_STATUSES:
            ended = await self._end_held(session_id, worker_id, report)
            if ended is not None:
                return ended
        # Not a terminal report, or not one the holder of a live session sent: read, check
        # and answer with the precise error.
        session = await self.owned_session(session_id, worker_id)
        if session.is_terminal or session.status == PENDING:
            return self._settled_repeat(session, report.status)
        if report.status not in _NEXT.get(session.status, frozenset()):
            raise InvalidTransition(session.status, report.status)
        now = self.clock.now_ms()
        changes = self._status_changes(report, now)
        event = None
        if report.status != session.status:
            event = self._status_event(session_id, worker_id, report, now)
        updated = await self.store.update_session(
            session.id, Expect(worker_id, session.lease_epoch, LIVE_STATUSES), changes, event
        )
        if updated is None:  # the lease moved on between our read and our write
            raise NotOwner(session_id)
        if updated.is_terminal:
            await self.channel.on_session_end(updated)
        return updated

    async def _end_held(
        self, session_id: str, worker_id: str, report: StatusReport
    ) -> SessionRecord | None:
        """The common ending, in one transaction and without a read first: the holder of a
        live session reports how it ended. Every live status may end, so owner and status
        are the whole check (an AgentFactory report carries no lease epoch)."""
        now = self.clock.now_ms()
        changes = self._status_changes(report, now)
        event = self._status_event(session_id, worker_id, report, now)
        ended = await self.store.end_held_session(session_id, worker_id, changes, event)
        if ended is not None:
            await self.channel.release_issue(ended)
        return ended

    @staticmethod
    def _settled_repeat(session: SessionRecord, requested: str) -> SessionRecord:
        # A settled session only takes a repeat of its own status, or the `finalizing` a
        # worker sends after it noticed an operator stop; neither changes anything.
        if requested == session.status or (session.status == STOPPED and requested == FINALIZING):
            return session
        raise InvalidTransition(session.status, requested)

    @staticmethod
    def _status_event(
        session_id: str, worker_id: str, report: StatusReport, now: int
    ) -> SessionEvent:
        return SessionEvent(
            session_id=session_id,
            at=now,
            kind="status",
            status=report.status,
            worker_id=worker_id,
            reason=report.error_message,
        )

    @staticmethod
    def _status_changes(report: StatusReport, now: int) -> dict[str, Any]:
        changes: dict[str, Any] = {"status": report.status, "updated_at": now}
        optional = {
            "provider_session_id": report.provider_session_id,
            "worktree_path": report.worktree_path,
            "error_message": report.error_message,
            "total_cost_usd": report.total_cost_usd,
            "input_tokens": report.input_tokens,
            "output_tokens": report.output_tokens,
        }
        changes.update({k: v for k, v in optional.items() if v is not None})
        # Once the worker reports progress, its heartbeats (not a claim timer) keep the lease.
        changes["lease_expires_at"] = None
        return changes

    async def nack(self, session_id: str, worker_id: str, reason: str | None) -> SessionRecord:
        """A worker hands back a pre-claimed session it cannot run: it keeps its place."""
        session = await self.owned_session(session_id, worker_id)
        if session.status != CLAIMED:
            raise Conflict(f"Session is {session.status}; only a claimed session can be nacked")
        why = f"nacked by {worker_id}: {reason or 'no reason'}"
        return await self._requeue(session, why, BY_NACKED, keep_place=True)

    async def transfer(
        self, session_id: str, old_worker: str, new_worker: str, actor: Actor = ANYONE
    ) -> TransferOutcome:
        """Move a live session from its holder to another worker (an AgentFactory worker that
        re-registered under a new id keeps its sessions this way). The actor must be able to
        act for the new worker and touch the session's project, and the new worker must be
        allowed that project; the holder must be gone (not active) unless the actor speaks
        for it: acts as the holder, or holds the registration token the holder came from.
        Anything else answers as the reference does, `transferred: false` with a reason."""
        session = await self.store.get_session(session_id)
        if session is None or not actor.may_touch(session.org_id, session.project):
            return TransferOutcome(False, reason="Session not found")
        if session.worker_id != old_worker or not session.is_live:
            owner = session.worker_id or "none"
            return TransferOutcome(False, reason=f"Session owned by different worker: {owner}")
        new = await self.store.get_worker(new_worker)
        if new is None or new.status != WORKER_ACTIVE:
            return TransferOutcome(False, reason=f"Worker not found: {new_worker}")
        if new.projects and session.project not in new.projects:
            return TransferOutcome(
                False, reason=f"Worker not authorized for project {session.project}"
            )
        if not await self._speaks_for_holder(actor, old_worker):
            return TransferOutcome(False, reason=f"Session is held by a live worker: {old_worker}")
        now = self.clock.now_ms()
        moved = dataclasses.replace(
            session, worker_id=new_worker, lease_epoch=session.lease_epoch + 1, updated_at=now
        )
        who = Who(actor.worker_id or actor.registration_id or "worker-key", "worker")
        fact = {"from": old_worker, "to": new_worker}
        updated = await self.store.update_session(
            session.id,
            Expect(old_worker, session.lease_epoch, LIVE_STATUSES),
            {"worker_id": new_worker, "lease_epoch": session.lease_epoch + 1, "updated_at": now},
            SessionEvent(
                session_id=session.id,
                at=now,
                kind="status",
                status=session.status,
                worker_id=new_worker,
                reason=f"ownership transferred from {old_worker}",
            ),
            # The session.transferred entry, written with the transfer.
            None if self.audit is None else outbox_fact(moved, SESSION_TRANSFERRED, who, fact),
        )
        if updated is None:
            return TransferOutcome(False, reason="Session ownership changed concurrently")
        return TransferOutcome(True, updated)

    async def _speaks_for_holder(self, actor: Actor, holder_id: str) -> bool:
        if actor.may_act_as(holder_id):
            return True
        holder = await self.store.get_worker(holder_id)
        if holder is None or holder.status != WORKER_ACTIVE:
            return True  # a dead holder's sessions are free to whoever may take them
        return actor.registration_id is not None and (
            holder.registration_id == actor.registration_id
        )

    async def retire_registration(self, registration_id: str) -> list[str]:
        """A revoked registration token's workers are dead at once (their credentials no
        longer work anywhere), and their sessions go back to the queue. Returns the ids of
        the requeued sessions."""
        now = self.clock.now_ms()
        requeued = []
        for worker_id in await self.store.workers_of_registration(registration_id):
            if await self.store.end_worker(worker_id, WORKER_DEAD, now):
                self.counters.count_worker_end(ENDED_BY_REVOCATION)
                reason = f"worker {worker_id}'s registration token was revoked"
                requeued.extend(await self._requeue_all(worker_id, reason, BY_REGISTRATION_REVOKED))
        return requeued

    async def deregister(self, worker_id: str) -> list[str]:
        """End a worker at its own request; its live sessions go back to the queue at once."""
        if not await self.store.end_worker(worker_id, WORKER_DEREGISTERED, self.clock.now_ms()):
            raise WorkerNotFound(worker_id)
        self.counters.count_worker_end(ENDED_BY_DEREGISTRATION)
        reason = f"worker {worker_id} deregistered"
        return await self._requeue_all(worker_id, reason, BY_WORKER_DEREGISTERED)

    # -- upkeep --

    async def reap(self) -> ReapReport:
        """Declare silent workers dead and requeue their sessions. Safe on every replica:
        only the process whose update ends a worker requeues that worker's sessions."""
        now = self.clock.now_ms()
        report = ReapReport()
        cutoff = now - self.worker_ttl_ms
        for worker_id in await self.store.silent_workers(cutoff):
            # Conditional: a worker already ended by another replica, or one whose heartbeat
            # landed since our read, is left alone.
            if not await self.store.end_worker(worker_id, WORKER_DEAD, now, silent_since=cutoff):
                continue
            report.dead_workers.append(worker_id)
            self.counters.count_worker_dead()
            self.counters.count_worker_end(ENDED_BY_SILENCE)
            reason = f"worker {worker_id} sent no heartbeat for {self.worker_ttl_ms // 1000}s"
            await self._audit_worker_end(worker_id, WORKER_DECLARED_DEAD, reason)
            report.requeued.extend(await self._requeue_all(worker_id, reason, BY_WORKER_DEAD))
        for session in await self.store.expired_leases(now):
            # Fenced by owner, epoch and expiry: if another replica requeued it first, or its
            # holder renewed the lease since our read, this changes nothing.
            expired = await self._requeue_or_none(
                session, "lease expired", BY_LEASE_EXPIRED, expired_by=now
            )
            if expired is not None:
                report.requeued.append(session.id)
        report.promoted.extend(await self.channel.reap_issue_locks())
        return report

    async def _audit_worker_end(self, worker_id: str, event: str, reason: str) -> None:
        org = await self.worker_org(worker_id)
        if self.audit is not None and org is not None:
            await self.audit.record(org, event, SYSTEM, ("worker", worker_id), {"reason": reason})

    async def next_reap_at(self) -> int | None:
        """When the next lease runs out or the next worker falls silent for its TTL (epoch
        ms; None if nothing is leased and no worker is active): the reaper's next pass is
        due then, so that what it frees is claimable at once."""
        lease, heartbeat = await self.store.earliest_expiries()
        due = [
            d
            for d in (lease, None if heartbeat is None else heartbeat + self.worker_ttl_ms)
            if d is not None
        ]
        return min(due) if due else None

    async def _requeue_all(self, worker_id: str, reason: str, cause: str) -> list[str]:
        requeued = []
        for session in await self.store.live_sessions_of(worker_id):
            if await self._requeue_or_none(session, reason, cause) is not None:
                requeued.append(session.id)
        return requeued

    async def _requeue(
        self, session: SessionRecord, reason: str, cause: str, *, keep_place: bool
    ) -> SessionRecord:
        updated = await self._requeue_or_none(session, reason, cause, keep_place=keep_place)
        if updated is None:
            raise NotOwner(session.id)
        return updated

    async def _requeue_or_none(
        self,
        session: SessionRecord,
        reason: str,
        cause: str,
        *,
        keep_place: bool = False,
        expired_by: int | None = None,
    ) -> SessionRecord | None:
        """Return a live session to the queue. Unless it keeps its place, it moves up one
        priority, to the back of that priority, and never resumes the old provider session."""
        now = self.clock.now_ms()
        changes: dict[str, Any] = {
            "status": PENDING,
            "worker_id": None,
            "claimed_at": None,
            "lease_expires_at": None,
            "updated_at": now,
            # A requeued environment work item is deliverable to the next poll at once.
            "delivered_to": None,
            "delivered_at": None,
        }
        packet = None
        if not keep_place:
            changes.update(
                priority=max(1, session.priority - 1), queued_at=now, provider_session_id=None
            )
            # Crash recovery: the next worker's work item points at a snapshot of this run.
            packet = await self.channel.build_packet(session, reason)
            changes["extra"] = {**session.extra, **self.channel.work_pointer(packet)}
        requeued = await self.store.update_session(
            session.id,
            Expect(
                session.worker_id,
                session.lease_epoch,
                LIVE_STATUSES,
                lease_expired_by=expired_by,
            ),
            changes,
            SessionEvent(
                session_id=session.id,
                at=now,
                kind="status",
                status=PENDING,
                worker_id=session.worker_id,
                reason=reason,
                data={"recoveryPacketId": packet.id} if packet else {},
            ),
        )
        if requeued is not None:
            self.counters.count_requeue(cause)
            await self.channel.keep_issue_lock(requeued)
            if packet is not None:
                await self.store.insert_recovery_packet(packet)
            await self.notifier.notify(requeued.queue)
        return requeued


def _nothing_to_wait_for(polled: WorkerPoll) -> bool:
    """Whether a poll is answered as it is: it has work or messages, or no room for work."""
    return bool(polled.claimed or polled.inbox) or polled.free <= 0
