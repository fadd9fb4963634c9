"""Every HTTP request counted and timed, by method, route template and status: measured
around the whole application (the fast lane included), so no request escapes it. A path that
matches no route is counted under one label, so random paths cannot grow the label set."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "(unmatched)"
# Seconds. Most worker calls take milliseconds; held polls and streams take seconds to hours.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class HttpMetrics:
    """The request histogram of one application, in a registry of its own."""

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
            self.duration.labels(*labels).observe(elapsed)


def route_of(scope: Scope) -> str:
    """The template of the route that served the request (`/api/sessions/{session_id}`)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
