"""The public Sessions API's view of sessions (rensei-platform.md §2): the public id and the
session hash, the public status vocabulary, and what prompt, stop and the fleet stats do.
Every session is the same row the worker protocols move; nothing is copied. A caller sees
only its organisation's sessions, and only those of its projects."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from shopfloor.ids import uuid7_hex
from shopfloor.service.actors import Principal
from shopfloor.service.dispatch import Dispatcher, af_queue
from shopfloor.service.errors import Conflict, SessionNotFound
from shopfloor.store.records import (
    CLAIMED,
    FINALIZING,
    PARKED,
    PENDING,
    RUNNING,
    STOPPED,
    WORKER_ACTIVE,
    Expect,
    SessionEvent,
    SessionFilter,
    SessionRecord,
    SessionStats,
)

PUBLIC_ID = re.compile(r"^[0-9a-f]{16}$")
SESSION_HASH = re.compile(r"^[0-9a-f]{32}$")
PUBLIC_STATUS = {
    PENDING: "queued",
    PARKED: "parked",
    CLAIMED: "working",
    RUNNING: "working",
    FINALIZING: "working",
}
PROMPT_PRIORITY = 2  # a prompted session is re-dispatched ahead of ordinary work
DAY_MS = 86_400_000


def public_status(session: SessionRecord) -> str:
    """queued, parked, working, completed, failed or stopped."""
    return PUBLIC_STATUS.get(session.status, session.status)


def session_hash(session_id: str) -> str:
    """What lets a caller without a key read a session's activities: 32 hex digits of
    SHA-256("session:" + the raw session id)."""
    return hashlib.sha256(f"session:{session_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PromptOutcome:
    delivered: bool
    prompt_id: str
    session: SessionRecord


@dataclass(frozen=True)
class FleetStats:
    workers_online: int
    capacity: int  # free agent slots of the online workers
    sessions: SessionStats
    day_started_at: int


class PublicSessions:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.store = dispatcher.store
        self.clock = dispatcher.clock

    async def find(self, who: Principal, ident: str) -> SessionRecord:
        """The session `ident` names (its public id, or its raw id), if `who` may see it;
        to anyone else it does not exist."""
        if PUBLIC_ID.match(ident):
            found = await self.store.list_sessions(
                SessionFilter(public_id=ident, org_id=who.org_id, projects=who.projects, limit=2)
            )
            if found:
                return found[0]
        session = await self.store.get_session(ident)
        if session is None or not who.may_touch(session.org_id, session.project):
            raise SessionNotFound(ident)
        return session

    async def by_hash(self, session_id: str, hashed: str) -> SessionRecord:
        """The session a caller without a key names by raw id and session hash."""
        session = await self.store.get_session(session_id)
        if session is None or session_hash(session.id) != hashed:
            raise SessionNotFound(session_id)
        return session

    async def prompt(self, who: Principal, session: SessionRecord, text: str) -> PromptOutcome:
        """A running or queued session gets the prompt as a directive on its worker's next
        poll; an ended AgentFactory session is queued again with it, at priority 2."""
        if not session.is_terminal:
            message = await self.dispatcher.channel.send(
                session.id, "directive", text, user_id=who.identity
            )
            return PromptOutcome(True, message.id, session)
        if session.queue != af_queue(session.org_id):
            raise Conflict(f"prompt: the session is {session.status} and cannot be resumed")
        return PromptOutcome(True, f"msg_{uuid7_hex()}", await self._reopen(session, text))

    async def _reopen(self, session: SessionRecord, text: str) -> SessionRecord:
        now = self.clock.now_ms()
        status = PENDING
        if session.issue_id is not None and not await self.store.refresh_issue_lock(
            session.org_id,
            session.issue_id,
            session.id,
            session.work_type,
            now,
            self.dispatcher.channel.lock_expiry(),
        ):
            status = PARKED  # another session holds the issue: this one waits its turn
        reopened = await self.store.update_session(
            session.id,
            Expect(session.worker_id, session.lease_epoch, (session.status,)),
            {
                "status": status,
                "priority": PROMPT_PRIORITY,
                "prompt": text,
                "queued_at": now,
                "updated_at": now,
                "worker_id": None,
                "claimed_at": None,
                "lease_expires_at": None,
                "stop_requested_at": None,
                "error_message": None,
                "ended_at": None,
                "delivered_to": None,
                "delivered_at": None,
                "provider_session_id": None,
            },
            SessionEvent(
                session_id=session.id, at=now, kind="status", status=status, reason="prompted"
            ),
        )
        if reopened is None:
            raise Conflict("Session changed concurrently; try again")
        if status == PENDING:
            await self.dispatcher.notifier.notify(reopened.queue)
        return reopened

    async def stop(self, who: Principal, session: SessionRecord) -> SessionRecord | None:
        """Stop the session; None if it had already ended."""
        if session.is_terminal:
            return None
        try:
            return await self.dispatcher.channel.stop(
                session.id, "Stop signal received", user_id=who.identity
            )
        except Conflict:
            latest = await self.dispatcher.get_session(session.id)
            if latest.status == STOPPED or latest.is_terminal:
                return None
            raise

    async def stats(self, who: Principal) -> FleetStats:
        now = self.clock.now_ms()
        day_start = now - now % DAY_MS
        workers = await self.store.list_workers(WORKER_ACTIVE, who.org_id)
        if who.projects is not None:
            workers = [w for w in workers if w.projects and set(w.projects) & who.projects]
        return FleetStats(
            workers_online=len(workers),
            capacity=sum(max(0, w.capacity - w.active_count) for w in workers),
            sessions=await self.store.session_stats(who.org_id, who.projects, day_start),
            day_started_at=day_start,
        )
