"""The whole-server gauges, built at each scrape from what the service layer reads: nothing is
kept between scrapes, so every figure is the database's at the moment of the scrape, whichever
server process answers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from shopfloor.store.integration_records import AuditBacklog
from shopfloor.store.records import PENDING, WORKER_ACTIVE
from shopfloor.store.stats_records import SessionCount, WorkerCount

QUEUE_LABELS = ("org", "queue", "project")


def session_families(counts: Iterable[SessionCount], now_ms: int) -> list[Metric]:
    by_status = GaugeMetricFamily(
        "shopfloor_sessions",
        "Open sessions (pending, parked, claimed, running, finalizing) by organisation, "
        "queue, project and status",
        labels=(*QUEUE_LABELS, "status"),
    )
    depth = GaugeMetricFamily(
        "shopfloor_queue_depth", "Sessions waiting to be claimed (pending)", labels=QUEUE_LABELS
    )
    oldest = GaugeMetricFamily(
        "shopfloor_queue_oldest_age_seconds",
        "How long the longest-waiting pending session has waited",
        labels=QUEUE_LABELS,
    )
    for c in counts:
        where = (c.org_id, c.queue, c.project or "")
        by_status.add_metric([*where, c.status], c.count)
        if c.status == PENDING:
            depth.add_metric(list(where), c.count)
            if c.oldest_queued_at is not None:
                oldest.add_metric(list(where), max(0, now_ms - c.oldest_queued_at) / 1000)
    return [by_status, depth, oldest]


def worker_families(counts: Iterable[WorkerCount]) -> list[Metric]:
    workers = GaugeMetricFamily(
        "shopfloor_workers",
        "Active workers by organisation, protocol and status",
        labels=("org", "protocol", "status"),
    )
    capacity: dict[tuple[str, str], int] = defaultdict(int)
    active: dict[tuple[str, str], int] = defaultdict(int)
    for c in counts:
        workers.add_metric([c.org_id, c.protocol, c.status], c.count)
        if c.status == WORKER_ACTIVE:
            capacity[c.org_id, c.protocol] += c.capacity
            active[c.org_id, c.protocol] += c.active
    capacity_family = GaugeMetricFamily(
        "shopfloor_worker_capacity",
        "Summed capacity (concurrent sessions) of the live workers",
        labels=("org", "protocol"),
    )
    active_family = GaugeMetricFamily(
        "shopfloor_worker_active_sessions",
        "Sessions the live workers report running, summed (their last heartbeats)",
        labels=("org", "protocol"),
    )
    for key, value in capacity.items():
        capacity_family.add_metric(list(key), value)
        active_family.add_metric(list(key), active[key])
    return [workers, capacity_family, active_family]


def waiting_family(waiting: int) -> Metric:
    held = GaugeMetricFamily(
        "shopfloor_waiting_requests",
        "Held polls and open streams waiting for a wake-up in the server process that "
        "answered this scrape",
    )
    held.add_metric([], waiting)
    return held


def audit_families(backlog: Iterable[AuditBacklog], now_ms: int) -> list[Metric]:
    waiting = GaugeMetricFamily(
        "shopfloor_audit_outbox_waiting",
        "Audit facts (sessions created, claimed, ended) waiting in the outbox for their "
        "organisation's chain: the appender's lag (a read of the log chains them first)",
        labels=("org",),
    )
    oldest = GaugeMetricFamily(
        "shopfloor_audit_outbox_oldest_age_seconds",
        "How long ago the action of the oldest audit fact waiting in the outbox happened",
        labels=("org",),
    )
    for b in backlog:
        waiting.add_metric([b.org_id], b.waiting)
        oldest.add_metric([b.org_id], max(0, now_ms - b.oldest_at) / 1000)
    return [waiting, oldest]
