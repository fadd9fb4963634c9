"""Writes to a managed session, and the work item under it.

A write reads the row, works out a step (state.py) and applies it as a compare-and-set on the
row's `rev`, retried when another write came first; its events are appended in the same
transaction and published on the session's notifier topic, which wakes every stream watching
the session and the process running its turn, on every server process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shopfloor.clock import Clock
from shopfloor.service.errors import Conflict, ManagedSessionNotFound
from shopfloor.service.managed.events import topic
from shopfloor.service.managed.state import Step
from shopfloor.service.notifier import Notifier
from shopfloor.store import Store
from shopfloor.store.managed_records import ManagedSessionRecord
from shopfloor.store.records import PENDING, STOPPED, Expect, SessionEvent

ATTEMPTS = 50
STATUS = "status"


class ManagedLog:
    def __init__(self, store: Store, clock: Clock, notifier: Notifier) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier

    async def read(self, session_id: str) -> ManagedSessionRecord:
        record = await self.store.get_managed_session(session_id)
        if record is None:
            raise ManagedSessionNotFound(session_id)
        return record

    async def write(
        self, session_id: str, build: Callable[[ManagedSessionRecord, int], Step]
    ) -> tuple[ManagedSessionRecord, list[SessionEvent], Step]:
        """Apply `build(row, now)` to the session's row; an error it raises writes nothing."""
        for _ in range(ATTEMPTS):
            current = await self.read(session_id)
            step = build(current, self.clock.now_ms())
            done = await self.store.update_managed_session(
                session_id, current.rev, step.changes, step.events
            )
            if done is not None:
                record, stored = done
                if stored:
                    await self.notifier.publish(topic(session_id))
                return record, stored, step
        raise Conflict(f"Session {session_id} is being changed concurrently; try again")

    # -- the work item --

    async def ensure_work_item(self, session_id: str, reason: str) -> bool:
        """Queue the session's work item again if it has ended, so that a worker runs the
        calls its turn waits for. True if it was queued."""
        for _ in range(5):
            s = await self.store.get_session(session_id)
            if s is None or not s.is_terminal:
                return False
            now = self.clock.now_ms()
            changes: dict[str, Any] = {
                "status": PENDING,
                "worker_id": None,
                "queued_at": now,
                "updated_at": now,
                **{
                    name: None
                    for name in (
                        "claimed_at",
                        "lease_expires_at",
                        "lease_ttl_seconds",
                        "delivered_to",
                        "delivered_at",
                        "started_at",
                        "last_heartbeat_at",
                        "stop_requested_at",
                        "ended_at",
                    )
                },
            }
            event = SessionEvent(
                session_id=s.id, at=now, kind=STATUS, status=PENDING, reason=reason
            )
            done = await self.store.update_session(
                s.id, Expect(s.worker_id, s.lease_epoch, (s.status,)), changes, event
            )
            if done is not None:
                await self.notifier.notify(done.queue)
                return True
        return False

    async def cancel_queued_item(self, session_id: str, reason: str) -> None:
        """A terminated session's work item that no worker took yet is stopped, so none
        will. (A held one is stopped by its worker, which sees the termination.)"""
        for _ in range(5):
            s = await self.store.get_session(session_id)
            if s is None or s.status != PENDING:
                return
            now = self.clock.now_ms()
            changes = {"status": STOPPED, "ended_at": now, "updated_at": now}
            event = SessionEvent(
                session_id=s.id, at=now, kind=STATUS, status=STOPPED, reason=reason
            )
            expect = Expect(s.worker_id, s.lease_epoch, (PENDING,))
            if await self.store.update_session(s.id, expect, changes, event) is not None:
                return

    async def record_usage(self, session_id: str, usage: dict[str, int]) -> None:
        """The token counts on the session row too (the operator's views show them)."""
        for _ in range(5):
            s = await self.store.get_session(session_id)
            if s is None:
                return
            changes = {
                "input_tokens": usage.get("input_tokens", 0),
                "output_tokens": usage.get("output_tokens", 0),
            }
            expect = Expect(s.worker_id, s.lease_epoch, (s.status,))
            if await self.store.update_session(s.id, expect, changes, None) is not None:
                return
