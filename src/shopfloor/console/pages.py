"""The console's pages: overview (fleet and queues), the session list, one session."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from shopfloor.api.state import services
from shopfloor.console.auth import current_login
from shopfloor.console.render import age, page
from shopfloor.console.views import fleet_rows, queue_rows
from shopfloor.service.console_logins import ConsoleLogin
from shopfloor.service.errors import SessionNotFound
from shopfloor.store.records import ALL_STATUSES, SessionFilter, SessionRecord

router = APIRouter(include_in_schema=False)  # pages, not API
PAGE_SIZE = 50
WORKERS_SHOWN = 200
Filter = Annotated[str | None, Query(max_length=200)]


def to_login() -> Response:
    return RedirectResponse("/console/login", status_code=303)


def denied(login: ConsoleLogin, scope: str) -> Response:
    return page("error.html", 403, login=login, message=f"This key lacks the {scope} scope.")


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/console/", status_code=303)


@router.get("/console/")
async def overview(request: Request) -> Response:
    login = await current_login(request)
    if login is None:
        return to_login()
    if not login.who.may("sessions:read"):
        return denied(login, "sessions:read")
    svc = services(request)
    fleet = svc.fleet
    now = svc.clock.now_ms()
    queues = queue_rows(await fleet.session_counts(login.who))
    workers, fleet_summary = [], []
    if login.who.may("workers:read"):
        fleet_summary = fleet_rows(await fleet.worker_counts(login.who))
        workers = (await fleet.workers(login.who, "active"))[:WORKERS_SHOWN]
    recent = await _sessions(request, login, SessionFilter(limit=10))
    return page(
        "overview.html",
        login=login,
        queues=queues,
        fleet=fleet_summary,
        workers=workers,
        recent=recent,
        now=now,
        age=age,
        may_see_workers=login.who.may("workers:read"),
    )


@router.get("/console/sessions")
async def session_list(
    request: Request,
    status: Filter = None,
    project: Filter = None,
    worker: Filter = None,
    issue: Filter = None,
    work_type: Filter = None,
    before: Filter = None,
) -> Response:
    login = await current_login(request)
    if login is None:
        return to_login()
    if not login.who.may("sessions:read"):
        return denied(login, "sessions:read")
    filters = {"status": status, "project": project, "worker": worker, "issue": issue}
    filters["work_type"] = work_type
    chosen = {k: v for k, v in filters.items() if v}
    if status and status not in ALL_STATUSES:
        return page("error.html", 400, login=login, message="status: not a session status")
    flt = SessionFilter(
        status=status or None,
        project=project or None,
        worker_id=worker or None,
        issue_id=issue or None,
        work_type=work_type or None,
        before_id=before or None,
        limit=PAGE_SIZE,
    )
    sessions = await _sessions(request, login, flt)
    next_cursor = sessions[-1].id if len(sessions) == PAGE_SIZE else None
    return page(
        "sessions.html",
        login=login,
        sessions=sessions,
        filters=chosen,
        statuses=ALL_STATUSES,
        next_cursor=next_cursor,
        now=services(request).clock.now_ms(),
        age=age,
    )


@router.get("/console/sessions/{session_id}")
async def session_page(request: Request, session_id: str, notice: Filter = None) -> Response:
    login = await current_login(request)
    if login is None:
        return to_login()
    session = await visible(request, login, session_id)
    if session is None:
        return page("error.html", 404, login=login, message="No such session.")
    # The status history is the timeline's status entries: the page's stream sends them.
    return page(
        "session.html",
        login=login,
        session=session,
        notice=notice,
        may_act=login.who.may("sessions:write"),
    )


async def visible(request: Request, login: ConsoleLogin, session_id: str) -> SessionRecord | None:
    """The session, if this login may read it (the operator API's rule: its organisation,
    its projects); None for one it may not, as for one that does not exist."""
    if not login.who.may("sessions:read") or len(session_id) > 200:
        return None
    try:
        session = await services(request).dispatcher.get_session(session_id)
    except SessionNotFound:
        return None
    return session if login.who.may_touch(session.org_id, session.project) else None


async def _sessions(
    request: Request, login: ConsoleLogin, flt: SessionFilter
) -> list[SessionRecord]:
    scoped = replace(flt, org_id=login.who.org_id, projects=login.who.projects)
    return await services(request).dispatcher.list_sessions(scoped)
