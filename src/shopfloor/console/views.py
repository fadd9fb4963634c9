"""What the overview shows, gathered from the service layer: queues (open sessions grouped by
organisation, queue and project) and the fleet (active workers grouped by protocol)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from shopfloor.store.records import LIVE_STATUSES, PARKED, PENDING
from shopfloor.store.stats_records import SessionCount, WorkerCount


@dataclass
class QueueRow:
    org_id: str
    queue: str
    project: str
    pending: int = 0
    parked: int = 0
    live: int = 0
    oldest_pending_at: int | None = None


@dataclass
class FleetRow:
    protocol: str
    workers: int = 0  # active ones
    capacity: int = 0
    active: int = 0


def queue_rows(counts: list[SessionCount]) -> list[QueueRow]:
    rows: dict[tuple[str, str, str], QueueRow] = {}
    for c in counts:
        key = (c.org_id, c.queue, c.project or "")
        row = rows.setdefault(key, QueueRow(*key))
        if c.status == PENDING:
            row.pending += c.count
            row.oldest_pending_at = c.oldest_queued_at
        elif c.status == PARKED:
            row.parked += c.count
        elif c.status in LIVE_STATUSES:
            row.live += c.count
    return sorted(rows.values(), key=lambda r: (-r.pending, -r.live, r.queue, r.project))


def fleet_rows(counts: list[WorkerCount]) -> list[FleetRow]:
    rows: dict[str, FleetRow] = defaultdict(lambda: FleetRow(""))
    for c in counts:
        row = rows[c.protocol]
        row.protocol = c.protocol
        row.workers += c.count
        row.capacity += c.capacity
        row.active += c.active
    return sorted(rows.values(), key=lambda r: r.protocol)
