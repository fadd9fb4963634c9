"""The console's queues page (each queue now, and its claims and waits over the last minutes,
charted) and workers page (every worker, filtered and paged on the server)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from shopfloor.api.state import services
from shopfloor.console.auth import current_login
from shopfloor.console.charts import seconds
from shopfloor.console.pages import denied, to_login
from shopfloor.console.render import age, page
from shopfloor.console.views import queue_activity, queue_rows
from shopfloor.service.counters import AGENTFACTORY, VERYFRONT
from shopfloor.service.queue_history import SHOWN_MINUTES
from shopfloor.store.records import WORKER_ACTIVE, WORKER_DEAD, WORKER_DEREGISTERED
from shopfloor.store.stats_records import WorkerPage

router = APIRouter(include_in_schema=False)  # pages, not API
WORKERS_PER_PAGE = 50
WORKER_STATUSES = (WORKER_ACTIVE, WORKER_DEAD, WORKER_DEREGISTERED)
WORKER_PROTOCOLS = (AGENTFACTORY, VERYFRONT)  # environment workers do not register
Filter = Annotated[str | None, Query(max_length=200)]


@router.get("/console/queues")
async def queues(request: Request) -> Response:
    login = await current_login(request)
    if login is None:
        return to_login()
    if not login.who.may("sessions:read"):
        return denied(login, "sessions:read")
    svc = services(request)
    fleet = svc.fleet
    now_rows = queue_rows(await fleet.session_counts(login.who))
    activity = queue_activity(now_rows, await fleet.queue_history(login.who))
    return page(
        "queues.html",
        login=login,
        queues=activity,
        minutes=SHOWN_MINUTES,
        now=svc.clock.now_ms(),
        age=age,
        seconds=seconds,
    )


@router.get("/console/workers")
async def workers(
    request: Request,
    status: Filter = WORKER_ACTIVE,
    protocol: Filter = None,
    after: Filter = None,
) -> Response:
    login = await current_login(request)
    if login is None:
        return to_login()
    if not login.who.may("workers:read"):
        return denied(login, "workers:read")
    if status and status not in WORKER_STATUSES:
        return page("error.html", 400, login=login, message="status: not a worker status")
    if protocol and protocol not in WORKER_PROTOCOLS:
        return page("error.html", 400, login=login, message="protocol: not a protocol")
    svc = services(request)
    wanted = WorkerPage(
        status=status or None,
        protocol=protocol or None,
        after_id=after or None,
        limit=WORKERS_PER_PAGE + 1,  # one more: is there a next page?
    )
    found = await svc.fleet.workers_page(login.who, wanted)
    shown = found[:WORKERS_PER_PAGE]
    filters = {"status": status or ""}  # kept on every link: empty is any status
    if protocol:
        filters["protocol"] = protocol
    return page(
        "workers.html",
        login=login,
        workers=shown,
        filters=filters,
        status=status or "",
        protocol=protocol or "",
        statuses=WORKER_STATUSES,
        protocols=WORKER_PROTOCOLS,
        next_after=shown[-1].id if len(found) > WORKERS_PER_PAGE else None,
        first_page=after is None,
        now=svc.clock.now_ms(),
        age=age,
    )
