"""What each server process counts as it happens: every HTTP request (by method, route
template and status, with its duration), and the engine's recoveries. Kept by
prometheus-client: in a registry of the application's own, or, when the server runs several
processes (`--processes N`, which sets PROMETHEUS_MULTIPROC_DIR for them), in files every
process of the server reads at a scrape, so any process answers with the server's totals.

Requests are measured around the whole application (the fast lane included), so none escapes;
a path that matches no route is counted under one label, so random paths cannot grow the
label set."""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopfloor.api.metrics.db_time import DbTime
from shopfloor.service.counters import (
    PROTOCOLS,
    REQUEUE_CAUSES,
    WORKER_END_CAUSES,
    EngineCounters,
)
from shopfloor.store.observers import DB_COMMIT, DB_READ, DB_WRITE, StoreObservers
from shopfloor.store.records import TERMINAL_STATUSES

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "(unmatched)"
# Seconds. Most worker calls take milliseconds; held polls and streams take seconds to hours.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Seconds from queued to handed out: an idle fleet's held polls take milliseconds, a backlog
# minutes or hours.
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


# Seconds in the database: a SQLite statement takes microseconds, a Postgres round trip a
# fraction of a millisecond, a big report or a lock wait up to seconds.
def shared_dir() -> str | None:
    """The folder the server's processes share their counts in, if they do."""
    return os.environ.get(MULTIPROCESS_DIR) or None


class ProcessMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.duration = Histogram(
            "shopfloor_http_request_duration_seconds",
            "HTTP requests by method, route template and status, with their durations "
            "(until the last byte of the answer; a stream's whole life)",
            ("method", "route", "status"),
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.requeued = Counter(
            "shopfloor_sessions_requeued",
            "Live sessions taken back from their worker and queued again, by cause "
            "(lease_expired is a lease expiry)",
            ("cause",),
            registry=self.registry,
        )
        self.dead = Counter(
            "shopfloor_workers_declared_dead",
            "Workers declared dead after their TTL of silence",
            registry=self.registry,
        )
        self.claim_wait = Histogram(
            "shopfloor_claim_wait_seconds",
            "Sessions handed to a worker (claimed; an environment work item: delivered, again "
            "if redelivered), by protocol, with how long each had waited since it was queued",
            ("protocol",),
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.ended = Counter(
            "shopfloor_sessions_ended",
            "Sessions that ended, counted as each ends, by protocol and how it ended "
            "(completed, failed, stopped)",
            ("protocol", "status"),
            registry=self.registry,
        )
        self.workers_ended = Counter(
            "shopfloor_workers_ended",
            "Workers that ended, by cause (deregistered, dead, registration_revoked)",
            ("cause",),
            registry=self.registry,
        )
        self.db_seconds = Counter(
            "shopfloor_db_seconds",
            "Seconds in the database: read connections and transactions (kind read or "
            "write), and on SQLite group COMMITs (kind commit)",
            ("kind",),
            registry=self.registry,
        )
        self.db_operations = Counter(
            "shopfloor_db_operations",
            "Database operations timed in shopfloor_db_seconds, by the same kinds",
            ("kind",),
            registry=self.registry,
        )
        for cause in REQUEUE_CAUSES:
            self.requeued.labels(cause)  # every cause shows, at 0 until it happens
        for protocol in PROTOCOLS:
            for status in TERMINAL_STATUSES:
                self.ended.labels(protocol, status)
        for cause in WORKER_END_CAUSES:
            self.workers_ended.labels(cause)
        self.db_tally = DbTime(self.db_seconds, self.db_operations, (DB_READ, DB_WRITE, DB_COMMIT))
        # The child of each label set, kept: Histogram.labels() checks and locks on every
        # call (several microseconds), a dict lookup does not.
        self._children: dict[tuple[str, str, str], Any] = {}
        self._ended_children: dict[tuple[str, str], Any] = {}

    def watch(self, counters: EngineCounters) -> None:
        counters.on_requeue.append(lambda cause: self.requeued.labels(cause).inc())
        counters.on_worker_dead.append(self.dead.inc)
        counters.on_claim.append(self._claimed)
        counters.on_end.append(self._ended)
        counters.on_worker_end.append(lambda cause: self.workers_ended.labels(cause).inc())

    def watch_database(self, observers: StoreObservers) -> None:
        observers.db_time = self.db_tally.observe

    def _ended(self, protocol: str, status: str) -> None:
        child = self._ended_children.get((protocol, status))
        if child is None:
            child = self._ended_children[protocol, status] = self.ended.labels(protocol, status)
        child.inc()

    def _claimed(self, protocol: str, waits_ms: list[int]) -> None:
        child = self.claim_wait.labels(protocol)
        for wait in waits_ms:
            child.observe(wait / 1000)

    def exposition(self) -> bytes:
        """These metrics in the text format: this process's, or every process's of the
        server when they share a folder."""
        self.db_tally.flush()
        folder = shared_dir()
        if folder is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, folder)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    async def measure(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        status = 500  # if the app fails before it answers, the server answers 500
        started = time.perf_counter()

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, send_and_see)
        finally:
            elapsed = time.perf_counter() - started
            labels = (scope["method"], route_of(scope), str(status))
            child = self._children.get(labels)
            if child is None:
                child = self._children[labels] = self.duration.labels(*labels)
            child.observe(elapsed)


def route_of(scope: Scope) -> str:
    """The template of the route that served the request (`/api/sessions/{session_id}`)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
