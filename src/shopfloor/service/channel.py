"""The session channel: what a running session sends (activity, progress, completion, …) and
receives (inbox messages), its issue and file locks, the issue records behind the
issue-tracker proxy, and crash-recovery packets. No HTTP and no SQL here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from shopfloor.clock import Clock
from shopfloor.ids import uuid7_hex
from shopfloor.service.audit import SESSION_STOPPED, AuditLog, Who, outbox_fact
from shopfloor.service.errors import Conflict, InvalidInput, NotOwner, SessionNotFound
from shopfloor.service.notifier import Notifier
from shopfloor.store import Store
from shopfloor.store.records import (
    PARKED,
    STOPPED,
    Expect,
    FileLock,
    InboxMessage,
    IssueRecord,
    RecoveryPacket,
    SessionEvent,
    SessionFilter,
    SessionRecord,
)

# Issue state names the AgentFactory spawner maps back to a work type (STATUS_WORK_TYPE_MAP).
STATE_BY_WORK_TYPE = {
    "research": "Icebox",
    "development": "Backlog",
    "inflight": "Started",
    "qa": "Finished",
    "acceptance": "Delivered",
    "refinement": "Rejected",
}

INBOX_TYPES = ("stop", "directive", "nudge", "hook-result")
LANES = ("urgent", "normal")
LANE_OF = {"stop": "urgent", "directive": "urgent", "nudge": "normal", "hook-result": "normal"}
MESSAGES_PER_LANE = 10
RECOVERY_ACTIVITY_COUNT = 20
ACTIVITY_KINDS = ("activity", "tool-error", "external-urls", "completion", "security-scan")
LATE = "late"  # what a session's worker sent after the session ended


def by_session(messages: list[InboxMessage]) -> dict[str, list[InboxMessage]]:
    grouped: dict[str, list[InboxMessage]] = {}
    for m in messages:
        grouped.setdefault(m.session_id, []).append(m)
    return grouped


@dataclass(frozen=True)
class ToolErrorOutcome:
    created: bool
    reason: str | None = None


class SessionChannel:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        notifier: Notifier,
        *,
        issue_lock_ttl_seconds: float = 7200.0,
        file_lock_ttl_seconds: float = 3600.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier
        self.issue_lock_ttl_ms = int(issue_lock_ttl_seconds * 1000)
        self.file_lock_ttl_ms = int(file_lock_ttl_seconds * 1000)
        self.audit: AuditLog | None = None  # set by the app: where stops are recorded

    async def _session(self, session_id: str) -> SessionRecord:
        session = await self.store.get_session(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    # -- what the session sends: the timeline --

    async def record(
        self, session_id: str, worker_id: str | None, kind: str, data: dict[str, Any]
    ) -> SessionEvent:
        """Append an event to the session's timeline. With a worker id, only the lease holder
        may write (fenced on owner and lease epoch). Without one (a static-key call that names
        no worker) the event is unattributed: it is never credited to whoever holds the
        session now, which may not be the worker that wrote it. An event that arrives after
        the session ended is kept apart from its live timeline, as kind `late`."""
        session = await self._session(session_id)
        expect = None
        if worker_id is not None:
            if session.worker_id != worker_id:
                raise NotOwner(session_id)
            expect = Expect(worker_id, session.lease_epoch)
        if session.is_terminal:
            kind, data = LATE, {"kind": kind, **data}
        event = SessionEvent(
            session_id=session_id,
            at=self.clock.now_ms(),
            kind=kind,
            worker_id=worker_id,
            data=data,
        )
        stored = await self.store.append_session_event(event, expect)
        if stored is None:
            raise NotOwner(session_id)
        return stored

    async def tool_error(
        self, session_id: str, worker_id: str | None, data: dict[str, Any]
    ) -> ToolErrorOutcome:
        """Store a tool error once per (tool, first 100 characters of the message)."""
        session = await self._session(session_id)
        if worker_id is not None and session.worker_id != worker_id:
            raise NotOwner(session_id)
        key = f"{data.get('toolName')}:{str(data.get('errorMessage'))[:100]}"
        for ev in await self.store.session_events(session_id, kinds=["tool-error"]):
            if ev.data.get("dedupeKey") == key:
                return ToolErrorOutcome(False, "Duplicate tool error for this session")
        await self.record(session_id, worker_id, "tool-error", {**data, "dedupeKey": key})
        return ToolErrorOutcome(True)

    async def timeline(
        self, session_id: str, after: int = 0, limit: int = 500
    ) -> tuple[SessionRecord, list[SessionEvent]]:
        session = await self._session(session_id)
        return session, await self.store.session_events_after(session_id, after, limit)

    # -- issue locks --

    def lock_expiry(self) -> int:
        return self.clock.now_ms() + self.issue_lock_ttl_ms

    async def keep_issue_lock(self, session: SessionRecord) -> None:
        """A requeued session is still the issue's live work: renew its lock."""
        if session.issue_id is not None:
            await self.store.refresh_issue_lock(
                session.org_id,
                session.issue_id,
                session.id,
                session.work_type,
                self.clock.now_ms(),
                self.lock_expiry(),
            )

    async def refresh_issue_lock(self, session_id: str, worker_id: str, issue_id: str) -> bool:
        """The owner's lock heartbeat. Answers True to the owner even when another session
        holds the issue (the Go runner aborts on `refreshed:false`)."""
        session = await self._session(session_id)
        if session.worker_id != worker_id:
            raise NotOwner(session_id)
        if session.is_live and session.issue_id == issue_id:
            await self.store.refresh_issue_lock(
                session.org_id,
                issue_id,
                session_id,
                session.work_type,
                self.clock.now_ms(),
                self.lock_expiry(),
            )
        return True

    async def on_session_end(self, session: SessionRecord) -> SessionRecord | None:
        """Terminal side effects: release the issue lock and promote parked work, archive the
        inbox, release file reservations. Returns the promoted session, if any."""
        await self.store.release_session_holds(session.id, self.clock.now_ms())
        return await self.release_issue(session)

    async def release_issue(self, session: SessionRecord) -> SessionRecord | None:
        """An ended session's issue lock passes to the issue's parked work, if any; returns
        the promoted session."""
        if session.issue_id is None:
            return None
        promoted = await self.store.release_issue_lock(
            session.org_id, session.issue_id, session.id, self.clock.now_ms(), self.lock_expiry()
        )
        if promoted is not None:
            await self.sync_issue(promoted)
            await self.notifier.notify(promoted.queue)
        return promoted

    async def reap_issue_locks(self) -> list[str]:
        """Expired locks, and locks whose holder ended: release them and promote parked work."""
        now = self.clock.now_ms()
        promoted: list[str] = []
        for lock in await self.store.stale_issue_locks(now):
            session = await self.store.release_issue_lock(
                lock.org_id,
                lock.issue_id,
                lock.session_id,
                now,
                self.lock_expiry(),
                stale_only=True,
            )
            if session is not None:
                promoted.append(session.id)
                await self.sync_issue(session)
                await self.notifier.notify(session.queue)
        return promoted

    # -- inbox --

    async def send(
        self,
        session_id: str,
        type_: str,
        payload: str,
        *,
        user_id: str | None = None,
        user_name: str | None = None,
        message_id: str | None = None,
    ) -> InboxMessage:
        if type_ not in INBOX_TYPES:
            raise InvalidInput("type", "type must be one of: " + ", ".join(INBOX_TYPES))
        session = await self._session(session_id)
        if session.is_terminal and type_ != "stop":
            raise Conflict(f"Session is {session.status}; it takes no more messages")
        message = InboxMessage(
            id=message_id or f"msg_{uuid7_hex()}",
            session_id=session_id,
            type=type_,
            lane=LANE_OF[type_],
            payload=payload,
            created_at=self.clock.now_ms(),
            user_id=user_id,
            user_name=user_name,
        )
        await self.store.insert_inbox_message(message)
        await self.store.append_session_event(
            SessionEvent(
                session_id=session_id,
                at=message.created_at,
                kind="inbox",
                data={
                    "messageId": message.id,
                    "type": type_,
                    "lane": message.lane,
                    "payload": payload,
                    "userId": user_id,
                    "userName": user_name,
                },
            )
        )
        return message

    async def stop(
        self,
        session_id: str,
        reason: str | None = None,
        *,
        user_id: str | None = None,
        user_name: str | None = None,
    ) -> SessionRecord:
        """Operator stop. The session ends `stopped` at once (lock, files and lease released),
        and its holder also gets a `stop` message on its next poll."""
        session = await self._session(session_id)
        if session.status == STOPPED:
            return session
        if session.is_terminal:
            raise Conflict(f"Session is already {session.status}; it cannot be stopped")
        now = self.clock.now_ms()
        why = reason or "stopped by operator"
        who = Who(user_id or user_name or "operator", "user" if user_id else "operator")
        stopped = dataclasses.replace(session, status=STOPPED, updated_at=now)
        updated = await self.store.update_session(
            session.id,
            Expect(session.worker_id, session.lease_epoch, (session.status,)),
            {
                "status": STOPPED,
                "stop_requested_at": now,
                "lease_expires_at": None,
                "updated_at": now,
            },
            SessionEvent(
                session_id=session.id,
                at=now,
                kind="status",
                status=STOPPED,
                worker_id=session.worker_id,
                reason=why,
            ),
            # The session.stopped entry, written with the stop (and before its end's).
            None
            if self.audit is None
            else outbox_fact(stopped, SESSION_STOPPED, who, {"reason": why}),
        )
        if updated is None:
            raise Conflict("Session changed concurrently; try again")
        await self.on_session_end(updated)
        if updated.worker_id is not None:  # a held session: tell its worker on the next poll
            await self.send(session.id, "stop", why, user_id=user_id, user_name=user_name)
        return updated

    async def ack(self, session_id: str, message_id: str, worker_id: str | None) -> bool:
        session = await self._session(session_id)
        if worker_id is not None and session.worker_id != worker_id:
            raise NotOwner(session_id)
        message = await self.store.ack_inbox_message(session_id, message_id, self.clock.now_ms())
        if message is None:
            return False
        await self.store.append_session_event(
            SessionEvent(
                session_id=session_id,
                at=self.clock.now_ms(),
                kind="inbox-ack",
                worker_id=worker_id,
                data={"messageId": message_id, "type": message.type},
            )
        )
        return True

    # -- file locks --

    @staticmethod
    def repo_id(session: SessionRecord) -> str:
        """The repository scope of a session's file locks: the repository's base name (what
        the worker's own `basename(gitRoot)` gives), else the project."""
        repo = (session.repository or "").rstrip("/")
        if repo:
            base = repo.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
            return base[:-4] if base.endswith(".git") else base
        return session.project or "default"

    async def _file_session(self, session_id: str, worker_id: str | None) -> SessionRecord:
        session = await self._session(session_id)
        if worker_id is not None and session.worker_id != worker_id:
            raise NotOwner(session_id)
        return session

    async def reserve_files(
        self, session_id: str, worker_id: str | None, paths: list[str], reason: str | None
    ) -> tuple[list[str], list[FileLock]]:
        session = await self._file_session(session_id, worker_id)
        if session.is_terminal:
            raise Conflict(f"Session is {session.status}; it cannot reserve files")
        now = self.clock.now_ms()
        return await self.store.reserve_files(
            self.repo_id(session),
            session_id,
            paths,
            now,
            now + self.file_lock_ttl_ms,
            reason,
            worker_id,
        )

    async def file_conflicts(
        self, session_id: str, worker_id: str | None, paths: list[str]
    ) -> list[FileLock]:
        session = await self._file_session(session_id, worker_id)
        return await self.store.file_conflicts(
            self.repo_id(session), session_id, paths, self.clock.now_ms()
        )

    async def release_files(self, session_id: str, worker_id: str | None, paths: list[str]) -> int:
        session = await self._file_session(session_id, worker_id)
        return await self.store.release_files(self.repo_id(session), session_id, paths, worker_id)

    async def release_all_files(self, session_id: str, worker_id: str | None) -> int:
        await self._file_session(session_id, worker_id)
        return await self.store.release_session_files(session_id, worker_id)

    # -- issue records --

    async def sync_issue(self, session: SessionRecord, labels: list[str] | None = None) -> None:
        """Keep the issue record of a claimable session in step with it: its state names the
        session's work type, so the spawner's re-validation keeps that work type."""
        if session.issue_id is None or session.status == PARKED:
            return
        now = self.clock.now_ms()
        await self.store.upsert_issue(
            IssueRecord(
                id=session.issue_id,
                identifier=session.issue_identifier or session.issue_id,
                created_at=now,
                updated_at=now,
                title=session.title,
                description=session.description,
                state_name=STATE_BY_WORK_TYPE.get(session.work_type or ""),
                labels=labels or [],
                project=session.project,
                org_id=session.org_id,
            )
        )

    async def find_issue(self, org_id: str, key: str) -> IssueRecord | None:
        """An issue of the organisation: another's issue of the same id is not found."""
        return await self.store.find_issue(org_id, key)

    async def change_issue(
        self,
        issue: IssueRecord,
        changes: dict[str, Any],
        kind: str,
        data: dict[str, Any],
        worker_id: str | None,
    ) -> IssueRecord:
        updated = await self.store.update_issue(
            issue.org_id, issue.id, {**changes, "updated_at": self.clock.now_ms()}
        )
        await self.note_on_issue(issue, kind, data, worker_id)
        return updated or issue

    async def note_on_issue(
        self, issue: IssueRecord, kind: str, data: dict[str, Any], worker_id: str | None
    ) -> None:
        """Record an issue-tracker call on the timeline of the issue's current session (one of
        the issue's organisation), as made by `worker_id` (None: a caller that named no
        worker)."""
        session = await self._issue_session(issue.org_id, issue.id)
        if session is None:
            return
        await self.store.append_session_event(
            SessionEvent(
                session_id=session.id,
                at=self.clock.now_ms(),
                kind=kind,
                worker_id=worker_id,
                data=data,
            )
        )

    async def _issue_session(self, org_id: str, issue_id: str) -> SessionRecord | None:
        lock = await self.store.get_issue_lock(org_id, issue_id)
        if lock is not None:
            held = await self.store.get_session(lock.session_id)
            if held is not None:
                return held
        recent = await self.store.list_sessions(
            SessionFilter(issue_id=issue_id, org_id=org_id, limit=1)
        )
        return recent[0] if recent else None

    # -- recovery packets --

    async def build_packet(self, session: SessionRecord, reason: str) -> RecoveryPacket:
        """A snapshot of where a session stood when its worker went away."""
        chain = await self.store.recovery_packets(session.id)
        events = await self.store.session_events(session.id)
        activities = [
            {"type": e.kind, "at": e.at, **e.data} for e in events if e.kind in ACTIVITY_KINDS
        ][-RECOVERY_ACTIVITY_COUNT:]
        milestones = [
            {"milestone": e.data.get("milestone"), "message": e.data.get("message"), "at": e.at}
            for e in events
            if e.kind == "progress"
        ]
        now = self.clock.now_ms()
        attempt = len(chain) + 1
        packet_id = f"rcv_{uuid7_hex()}"
        return RecoveryPacket(
            id=packet_id,
            session_id=session.id,
            created_at=now,
            attempt=attempt,
            data={
                "packetId": packet_id,
                "sessionId": session.id,
                "attempt": attempt,
                "previousPacketId": chain[-1].id if chain else None,
                "reason": reason,
                "workerId": session.worker_id,
                "lastStatus": session.status,
                "leaseEpoch": session.lease_epoch,
                "providerSessionId": session.provider_session_id,
                "worktreePath": session.worktree_path,
                "issueId": session.issue_id,
                "issueIdentifier": session.issue_identifier,
                "workType": session.work_type,
                "totalCostUsd": session.total_cost_usd,
                "inputTokens": session.input_tokens,
                "outputTokens": session.output_tokens,
                "lastActivities": activities,
                "milestones": milestones,
                "createdAt": now,
            },
        )

    @staticmethod
    def work_pointer(packet: RecoveryPacket) -> dict[str, Any]:
        """What the next worker's work item carries about the crash it resumes from."""
        d = packet.data
        return {
            "recoveryPacketId": packet.id,
            "recovery": {
                "packetId": packet.id,
                "attempt": packet.attempt,
                "reason": d.get("reason"),
                "lastStatus": d.get("lastStatus"),
                "worktreePath": d.get("worktreePath"),
                "previousProviderSessionId": d.get("providerSessionId"),
                "milestones": [m.get("milestone") for m in d.get("milestones", [])],
            },
        }

    async def generate_packet(
        self, session_id: str, worker_id: str | None, reason: str | None
    ) -> RecoveryPacket:
        """On request (a worker or an operator that saw a crash): snapshot and store."""
        session = await self._session(session_id)
        if worker_id is not None and session.worker_id not in (None, worker_id):
            raise NotOwner(session_id)
        packet = await self.build_packet(session, reason or "requested")
        await self.store.insert_recovery_packet(packet)
        return packet

    async def recovery_chain(self, session_id: str) -> list[RecoveryPacket]:
        await self._session(session_id)
        return await self.store.recovery_packets(session_id)
