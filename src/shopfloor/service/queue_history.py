"""Each queue's recent minutes: how many sessions were handed to workers, and how long they
had waited. A claim costs its process a dict update (nothing more on the hot path); the
process adds its counts to the database's per-minute rows every FLUSH_SECONDS, in one
transaction, so every process's claims reach the charts whichever process draws them (the
database is the shared record; a process that crashes loses at most its last seconds)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from shopfloor.clock import Clock
from shopfloor.service.actors import Principal
from shopfloor.store.base import Store
from shopfloor.store.records import SessionRecord
from shopfloor.store.stats_records import QueueMinute, StatsScope

log = logging.getLogger("shopfloor.queue_history")
MINUTE_MS = 60_000
FLUSH_SECONDS = 5.0
KEEP_MINUTES = 24 * 60  # older minutes are deleted at a flush
SHOWN_MINUTES = 15

Key = tuple[int, str, str, str]  # minute, organisation, queue, project ("" for none)


@dataclass
class QueueSeries:
    """One queue's last minutes, oldest first (a minute with no claim is 0)."""

    org_id: str
    queue: str
    project: str
    first_minute: int
    claims: list[int] = field(default_factory=list)
    mean_wait_ms: list[int | None] = field(default_factory=list)  # None: no claim that minute
    max_wait_ms: list[int | None] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.claims)


class QueueHistory:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._pending: dict[Key, list[int]] = {}  # -> [claims, wait sum, wait max]
        self._flushing = asyncio.Lock()

    def record(self, sessions: Sequence[SessionRecord], now: int) -> None:
        minute = now // MINUTE_MS
        for s in sessions:
            key = (minute, s.org_id, s.queue, s.project or "")
            wait = max(0, now - s.queued_at)
            tally = self._pending.get(key)
            if tally is None:
                self._pending[key] = [1, wait, wait]
            else:
                tally[0] += 1
                tally[1] += wait
                tally[2] = max(tally[2], wait)

    async def flush(self) -> None:
        """Add this process's counts since the last flush to the database's."""
        async with self._flushing:
            batch, self._pending = self._pending, {}
            if not batch:
                return
            rows = [QueueMinute(*key, *tally) for key, tally in batch.items()]
            keep_after = self._clock.now_ms() // MINUTE_MS - KEEP_MINUTES
            try:
                await self._store.add_queue_minutes(rows, keep_after)
            except BaseException:
                for key, tally in batch.items():  # kept for the next flush
                    self._merge(key, tally)
                raise

    def _merge(self, key: Key, tally: list[int]) -> None:
        mine = self._pending.get(key)
        if mine is None:
            self._pending[key] = tally
        else:
            self._pending[key] = [mine[0] + tally[0], mine[1] + tally[1], max(mine[2], tally[2])]

    async def run(self, every_seconds: float = FLUSH_SECONDS) -> None:
        """Flush every `every_seconds` until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(every_seconds)
                try:
                    await self.flush()
                except Exception:
                    log.exception("could not store the queue minutes; retrying")
        finally:
            try:
                await asyncio.shield(self.flush())
            except Exception:
                log.exception("could not store the last queue minutes")

    async def recent(self, who: Principal, minutes: int = SHOWN_MINUTES) -> list[QueueSeries]:
        """The last `minutes` minutes (this one included) of each queue the caller may see
        that handed out work in them, busiest first."""
        await self.flush()  # this process's latest claims too
        last = self._clock.now_ms() // MINUTE_MS
        first = last - minutes + 1
        stored = await self._store.queue_minutes(StatsScope(who.org_id, who.projects), first)
        series: dict[tuple[str, str, str], QueueSeries] = {}
        for m in stored:
            one = series.get((m.org_id, m.queue, m.project))
            if one is None:
                one = series[m.org_id, m.queue, m.project] = QueueSeries(
                    m.org_id,
                    m.queue,
                    m.project,
                    first,
                    [0] * minutes,
                    [None] * minutes,
                    [None] * minutes,
                )
            at = m.minute - first
            if not 0 <= at < minutes:
                continue
            one.claims[at] = m.claims
            one.mean_wait_ms[at] = m.wait_ms_sum // m.claims if m.claims else None
            one.max_wait_ms[at] = m.wait_ms_max
        return sorted(series.values(), key=lambda q: (-q.total, q.queue, q.project))
