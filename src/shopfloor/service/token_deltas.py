"""Interview token-delta frames (rensei-platform.md §1.5): a runner posts a turn's token
frames as they stream, and whoever watches the session receives them as server-sent events.
The frames are passed through as they came (their schema is not documented). Each batch is a
`token-delta` event of the session's timeline, so watchers on every server process see it
(woken through the notifier) and a watcher that reconnects resumes after the last batch it saw;
the public activities leave these events out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from shopfloor.clock import Clock
from shopfloor.service.notifier import Notifier, cancel_wait
from shopfloor.store import Store
from shopfloor.store.records import SessionEvent, SessionRecord

KIND = "token-delta"
BATCH = 200


def topic(session_id: str) -> str:
    return f"tokens:{session_id}"


class TokenDeltas:
    def __init__(self, store: Store, clock: Clock, notifier: Notifier) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier

    async def publish(
        self, session: SessionRecord, worker_id: str | None, turn_id: str, frames: list[Any]
    ) -> int:
        await self.store.append_session_event(
            SessionEvent(
                session_id=session.id,
                at=self.clock.now_ms(),
                kind=KIND,
                worker_id=worker_id,
                data={"turnId": turn_id, "frames": frames},
            )
        )
        await self.notifier.publish(topic(session.id))
        return len(frames)

    async def start(self, session_id: str, after: int | None) -> int:
        """Where a watcher starts: after `after`, else after the newest batch so far."""
        if after is not None:
            return after
        return await self.store.last_event_id(session_id, [KIND])

    async def follow(
        self, session_id: str, cursor: int, keepalive_seconds: float
    ) -> AsyncIterator[list[SessionEvent]]:
        """Batches of new token-delta events as they come (an empty one after
        `keepalive_seconds` of quiet); ends once the session has ended."""
        while True:
            # Listen before reading, so a batch stored between the read and the wait wakes us.
            waiter = asyncio.ensure_future(self.notifier.wait(topic(session_id), keepalive_seconds))
            try:
                await asyncio.sleep(0)
                events = await self.store.session_events_after(session_id, cursor, BATCH)
                if events:
                    cursor = events[-1].id or cursor
                    found = [e for e in events if e.kind == KIND]
                    if found:
                        yield found
                    if len(events) == BATCH:
                        continue
                session = await self.store.get_session(session_id)
                if session is None or session.is_terminal:
                    return
                if not await waiter:
                    yield []
            finally:
                if not waiter.done():
                    await cancel_wait(waiter)
