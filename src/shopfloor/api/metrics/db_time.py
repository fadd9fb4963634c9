"""shopfloor_db_seconds, kept cheaply: the store reports every transaction and read (several
per worker request), and a Prometheus observation costs about a microsecond in one process
and two with the multiprocess files, more than the rest of the measurement. So each report
only adds one to a bucket of a plain list (a C bisect) and to a sum; the tallies move into
the histogram when this process answers a scrape, and every FLUSH_SECONDS for the other
processes' scrapes (at most that late)."""

from __future__ import annotations

import asyncio
import math
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import Histogram

FLUSH_SECONDS = 5.0


class _Tally:
    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.total = 0.0


class DbTime:
    def __init__(self, histogram: Histogram, bounds: Iterable[float], kinds: Iterable[str]) -> None:
        self._bounds = [*bounds, math.inf]  # as the histogram's own buckets
        self._children: dict[str, Any] = {kind: histogram.labels(kind) for kind in kinds}
        self._tallies = {kind: _Tally(len(self._bounds)) for kind in self._children}

    def observe(self, kind: str, seconds: float) -> None:
        tally = self._tallies[kind]
        tally.counts[bisect_left(self._bounds, seconds)] += 1  # the first bound >= seconds
        tally.total += seconds

    def flush(self) -> None:
        """Move the tallies into the histogram. It has no public call to add many
        observations at once, so this adds to its children's bucket and sum values (the
        attributes its own observe() uses; tests/metrics fails if they stop meaning this)."""
        for kind, tally in self._tallies.items():
            counts, total = tally.counts, tally.total
            if not any(counts):
                continue
            tally.counts, tally.total = [0] * len(counts), 0.0
            child = self._children[kind]
            for value, n in zip(child._buckets, counts, strict=True):
                if n:
                    value.inc(n)
            child._sum.inc(total)

    async def run(self, every_seconds: float = FLUSH_SECONDS) -> None:
        """Flush every `every_seconds` until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(every_seconds)
                self.flush()
        finally:
            self.flush()
