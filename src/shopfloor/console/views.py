"""What the overview and the queues page show, gathered from the service layer: queues (open
sessions grouped by organisation, queue and project, with their recent minutes of claims) and
the fleet (active workers grouped by protocol)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from shopfloor.console.charts import Chart, bar_chart
from shopfloor.service.queue_history import QueueSeries
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


@dataclass
class QueueActivity:
    """A queue now (its open sessions) and over its last minutes (claims and waits)."""

    now: QueueRow
    claims: int = 0  # over the minutes shown
    mean_wait_ms: int | None = None
    max_wait_ms: int | None = None
    last_minutes: int = 0
    throughput: Chart | None = None  # claims per minute
    latency: Chart | None = None  # mean wait per minute


def queue_activity(rows: list[QueueRow], history: list[QueueSeries]) -> list[QueueActivity]:
    """Every queue with open sessions or recent claims; busiest first."""
    by_key = {(r.org_id, r.queue, r.project): QueueActivity(r) for r in rows}
    for series in history:
        key = (series.org_id, series.queue, series.project)
        activity = by_key.get(key)
        if activity is None:
            activity = by_key[key] = QueueActivity(QueueRow(*key))
        activity.claims = series.total
        activity.last_minutes = len(series.claims)
        waits = [(n, mean) for n, mean in zip(series.claims, series.mean_wait_ms, strict=True) if n]
        if waits:
            activity.mean_wait_ms = sum(n * mean for n, mean in waits if mean is not None) // sum(
                n for n, _ in waits
            )
        activity.max_wait_ms = max((m for m in series.max_wait_ms if m is not None), default=None)
        counts: list[int | None] = list(series.claims)
        activity.throughput = bar_chart(counts, series.first_minute, "/min")
        activity.latency = bar_chart(series.mean_wait_ms, series.first_minute, "ms")
    return sorted(
        by_key.values(),
        key=lambda a: (-a.claims, -a.now.pending, -a.now.live, a.now.queue, a.now.project),
    )
