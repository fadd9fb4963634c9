"""The audit appender: every server process runs one, moving the facts the audit outbox holds
(sessions created, claimed, ended; written in the transaction of each action) into their
organisations' chains, exactly once whichever process takes them (store.append_audit_facts).

Signing and hashing an entry costs the process's CPU (mostly the Ed25519 signature), the CPU
the request path needs while the server is busy. So the appender yields to it, within a
bound: every interval it counts the HTTP requests this process started since its last look.
While they are fewer than the busy rate, it appends everything waiting. While the server is
busy it lets the facts wait, until the oldest it has seen waiting has waited `max_lag`, or
`max_backlog` facts wait; then it appends everything waiting, batch by batch, letting
requests in between batches. So a fact is chained at most interval + max_lag + one pass
after its action, unless max_backlog facts wait first. Nothing is lost meanwhile (the facts
are in the database), and readers never see the lag: a read of the log chains what waits
first (AuditLog.entries)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from shopfloor.service.audit import AuditLog

log = logging.getLogger("shopfloor.audit")


@dataclass(frozen=True)
class Pace:
    interval_s: float
    max_lag_s: float
    max_backlog: int
    busy_requests_per_s: float

    @property
    def busy_requests(self) -> float:
        """Requests started in one interval that make the process busy."""
        return self.busy_requests_per_s * self.interval_s


class Appender:
    def __init__(
        self,
        audit: AuditLog,
        pace: Pace,
        requests_started: Callable[[], int],
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.audit = audit
        self.pace = pace
        self.requests_started = requests_started
        self.now = now
        self._requests_seen = requests_started()
        self.waiting_since: float | None = None  # first look that found facts waiting

    async def tick(self) -> int:
        """One look: append everything waiting now, or let it wait (the server is busy and
        the bound not reached). Returns how many facts were appended."""
        started = self.requests_started()
        busy = started - self._requests_seen >= self.pace.busy_requests
        self._requests_seen = started
        if busy and not await self._due():
            return 0
        self.waiting_since = None
        return await self.audit.append_all_pending()

    async def _due(self) -> bool:
        waiting = await self.audit.store.audit_waiting(self.pace.max_backlog)
        if waiting == 0:
            self.waiting_since = None
            return False
        now = self.now()
        if self.waiting_since is None:
            self.waiting_since = now
        return waiting >= self.pace.max_backlog or now - self.waiting_since >= self.pace.max_lag_s

    async def run(self) -> None:
        """Look every interval until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:  # keep appending through a transient database error
                log.exception("audit appender pass failed")
            await asyncio.sleep(self.pace.interval_s)
