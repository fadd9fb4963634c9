"""GET /metrics in the Prometheus text format.

Who may scrape: the admin key, the token SHOPFLOOR_METRICS_TOKEN names (so a Prometheus
config need not hold the admin key), or anyone when SHOPFLOOR_METRICS_PUBLIC is set. The
figures are whole-server (every organisation's queues), so an organisation's key may not."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.metrics.families import (
    audit_families,
    session_families,
    waiting_family,
    worker_families,
)
from shopfloor.api.metrics.process import ProcessMetrics
from shopfloor.api.state import Services, services
from shopfloor.service.actors import OPERATOR
from shopfloor.service.auth import same_secret

UNAUTHORIZED = "/metrics needs the admin key or the metrics token (SHOPFLOOR_METRICS_TOKEN)"
router = APIRouter(include_in_schema=False)


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    svc = services(request)
    _check_scraper(request, svc)
    fleet = svc.fleet
    families = [
        *session_families(await fleet.session_counts(OPERATOR), svc.clock.now_ms()),
        *worker_families(await fleet.worker_counts(OPERATOR)),
        waiting_family(fleet.held_polls()),
        *audit_families(await svc.audit.backlog(), svc.clock.now_ms()),
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    body = generate_latest(registry)
    process = getattr(request.app, "metrics", None)
    if isinstance(process, ProcessMetrics):
        body += process.exposition()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _check_scraper(request: Request, svc: Services) -> None:
    if svc.settings.metrics_public:
        return
    token = bearer(request)
    expected = svc.settings.metrics_token
    if token is not None and (
        svc.credentials.is_admin(token) or (expected is not None and same_secret(token, expected))
    ):
        return
    raise ApiError(401, UNAUTHORIZED)
