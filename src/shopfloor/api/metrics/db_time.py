"""Time in the database, kept cheaply: the store reports every transaction and read (several
per worker request), and a Prometheus increment costs about a microsecond in one process and
two with the multiprocess files, more than the rest of the measurement. So each report only
adds to a plain total and count per kind; they move into the two counters
(shopfloor_db_seconds_total, shopfloor_db_operations_total) when this process answers a
scrape, and every FLUSH_SECONDS for the other processes' scrapes (at most that late).

Two counters rather than a histogram: prometheus-client has no public call that adds many
observations to a histogram at once, and a counter's inc(amount) is public. Their rates give
the database's share of the time and the mean time per operation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from prometheus_client import Counter

FLUSH_SECONDS = 5.0


class _Tally:
    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0


class DbTime:
    def __init__(self, seconds: Counter, operations: Counter, kinds: Iterable[str]) -> None:
        self._kinds = tuple(kinds)
        self._seconds = {kind: seconds.labels(kind) for kind in self._kinds}
        self._operations = {kind: operations.labels(kind) for kind in self._kinds}
        self._tallies = {kind: _Tally() for kind in self._kinds}

    def observe(self, kind: str, seconds: float) -> None:
        tally = self._tallies[kind]
        tally.count += 1
        tally.total += seconds

    def flush(self) -> None:
        """Move the tallies into the counters."""
        for kind, tally in self._tallies.items():
            if not tally.count:
                continue
            count, total = tally.count, tally.total
            tally.count, tally.total = 0, 0.0
            self._operations[kind].inc(count)
            self._seconds[kind].inc(total)

    async def run(self, every_seconds: float = FLUSH_SECONDS) -> None:
        """Flush every `every_seconds` until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(every_seconds)
                self.flush()
        finally:
            self.flush()
