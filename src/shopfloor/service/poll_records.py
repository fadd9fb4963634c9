"""Environment-API polls, written down in batches. The queue's stats count the workers that
polled it within a window (work.POLLING_WINDOW_MS); a worker's poll is noted at most every
work.POLL_RECORD_EVERY_MS. A fleet of 3,000 long-polling workers still makes that 600 writes a
second, each its own transaction, so the notes gather here and go to the database together,
one transaction every FLUSH_EVERY_MS. What this costs: another process's stats count a new
poller up to FLUSH_EVERY_MS late (this process's stats flush first), and a process killed
before a flush loses its last notes, which only makes the count low until the workers'
next polls are noted."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from shopfloor.store import Store

log = logging.getLogger("shopfloor.work")

FLUSH_EVERY_MS = 1_000


class PollRecords:
    def __init__(self, store: Store, flush_every_ms: int = FLUSH_EVERY_MS) -> None:
        self.store = store
        self.flush_every_ms = flush_every_ms
        self._waiting: dict[tuple[str, str], int] = {}  # (queue, worker) -> polled at, ms
        self._flusher: asyncio.Task[None] | None = None

    def add(self, queue: str, worker_id: str, now: int) -> None:
        """Note a poll; it is written within flush_every_ms."""
        self._waiting[(queue, worker_id)] = now
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def flush(self) -> None:
        """Write every poll noted so far."""
        waiting, self._waiting = self._waiting, {}
        if waiting:
            await self.store.record_polls([(q, w, at) for (q, w), at in waiting.items()])

    async def close(self) -> None:
        """Stop the pending flush, and write what is noted."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        await self.flush()

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_every_ms / 1000)
        self._flusher = None
        try:
            await self.flush()
        except Exception:  # only the stats' count of pollers suffers; the next notes retry
            log.exception("poll records not written")
