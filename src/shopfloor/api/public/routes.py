"""The public Sessions API (rensei-platform.md §2) under /api/public: "public" means scoped to
the caller's organisation, not anonymous. An organisation's API key or an M2M access token
(or the admin key, for every organisation) with `sessions:read` reads, with `sessions:write`
prompts and stops; a key limited to projects sees only their sessions. `{id}` is a session's
16-hex public id (its raw id is accepted too). The activities of one session may also be read
without a key, by its raw id and its session hash. Errors are `{"error": "…"}`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from shopfloor.api.agentfactory.auth import WorkerCaller, authenticate
from shopfloor.api.envelope import INT64_MAX, ApiError, bearer
from shopfloor.api.openapi import ADMIN_KEY, OAUTH2, ORG_API_KEY, RUNTIME_TOKEN, ok, security, tag
from shopfloor.api.operator.auth import principal
from shopfloor.api.public import schemas
from shopfloor.api.public.errors import platform_errors
from shopfloor.api.state import Services, services
from shopfloor.api.timefmt import iso
from shopfloor.service.actors import Principal
from shopfloor.service.errors import SessionNotFound
from shopfloor.service.public_sessions import (
    SESSION_HASH,
    PublicSessions,
    public_status,
)
from shopfloor.store.records import SessionFilter, SessionRecord

PUBLIC_API = tag(
    "Rensei public Sessions API",
    "An organisation's sessions, read and steered with its API key (`rsk_live_…`) or an M2M "
    "access token: `sessions:read` to read, `sessions:write` to prompt and stop; a key "
    "limited to projects sees only those projects' sessions. `{id}` is the 16-hex public id. "
    'Errors are `{"error": "…"}`.',
    ADMIN_KEY,
    ORG_API_KEY,
    OAUTH2,
)
router = APIRouter(
    prefix="/api/public", tags=[PUBLIC_API], responses=platform_errors(400, 401, 403, 413)
)
UNAUTHORIZED = "Unauthorized"
MAX_PAGE = 200


async def caller(request: Request, scope: str) -> Principal:
    """The principal, narrowed by the Go client's scoping headers (X-Rensei-Org names the
    organisation, which must be the key's own; X-Rensei-Project narrows to one project)."""
    if bearer(request) is None:
        raise ApiError(401, UNAUTHORIZED)
    try:
        who = await principal(request)
    except ApiError:
        raise ApiError(401, UNAUTHORIZED) from None
    if not who.may(scope):
        raise ApiError(403, f"This key lacks the {scope} scope")
    named_org = request.headers.get("x-rensei-org")
    if named_org:
        org = (await services(request).orgs.get(named_org)).id
        if who.org_id is not None and org != who.org_id:
            raise ApiError(403, "X-Rensei-Org: this key acts in its own organisation only")
        who = Principal(org, who.projects, who.scopes, who.identity)
    return narrowed(who, request.headers.get("x-rensei-project"))


def narrowed(who: Principal, project: str | None) -> Principal:
    """The caller, limited to one project it may touch (none, if it may not)."""
    if not project:
        return who
    allowed = who.projects is None or project in who.projects
    return Principal(who.org_id, frozenset({project} if allowed else ()), who.scopes, who.identity)


async def reader(request: Request) -> Principal:
    return await caller(request, "sessions:read")


async def writer(request: Request) -> Principal:
    return await caller(request, "sessions:write")


Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]


def _public(request: Request) -> PublicSessions:
    return PublicSessions(services(request).dispatcher)


def _now(svc: Services) -> int:
    return svc.clock.now_ms()


@router.get("/stats", response_model=None, responses=ok(schemas.PublicStats))
async def stats(request: Request, who: Reader) -> schemas.PublicStats:
    """The organisation's fleet right now, and today's (UTC) sessions and cost."""
    found = await _public(request).stats(who)
    s = found.sessions
    return schemas.PublicStats(
        workersOnline=found.workers_online,
        agentsWorking=s.working,
        queueDepth=s.queued,
        completedToday=s.completed_since,
        availableCapacity=found.capacity,
        totalCostToday=round(s.cost_since, 6),
        totalCostAllTime=round(s.cost_all_time, 6),
        sessionCountToday=s.created_since,
        timestamp=iso(_now(services(request))) or "",
    )


@router.get("/sessions", response_model=None, responses=ok(schemas.PublicSessionList))
async def list_sessions(
    request: Request,
    who: Reader,
    projectId: Annotated[str | None, Query(max_length=200)] = None,
    project: Annotated[str | None, Query(max_length=200, description="Alias of projectId")] = None,
    cursor: Annotated[str | None, Query(max_length=64, description="nextCursor")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> schemas.PublicSessionList:
    who = narrowed(who, projectId or project)
    svc = services(request)
    found = await svc.dispatcher.list_sessions(
        SessionFilter(org_id=who.org_id, projects=who.projects, before_id=cursor, limit=limit)
    )
    now = _now(svc)
    return schemas.PublicSessionList(
        sessions=[schemas.item(s, now) for s in found],
        count=len(found),
        nextCursor=found[-1].id if len(found) == limit else None,
        timestamp=iso(now) or "",
    )


async def _session(request: Request, who: Principal, session_id: str) -> SessionRecord:
    if not session_id or len(session_id) > 64:
        raise ApiError(400, "Invalid session ID format")
    return await _public(request).find(who, session_id)


@router.get(
    "/sessions/{id}",
    response_model=None,
    responses=ok(schemas.PublicSessionReply) | platform_errors(404),
)
async def get_session(id: str, request: Request, who: Reader) -> schemas.PublicSessionReply:
    session = await _session(request, who, id)
    now = _now(services(request))
    return schemas.PublicSessionReply(
        session=schemas.detail(session, now), timestamp=iso(now) or ""
    )


@router.post(
    "/sessions/{id}/prompt",
    response_model=None,
    responses=ok(schemas.PublicPromptReply) | platform_errors(404, 409),
)
async def prompt_session(
    id: str, body: schemas.PublicPromptBody, request: Request, who: Writer
) -> schemas.PublicPromptReply:
    """A running or queued session gets the prompt on its worker's next poll; an ended one
    is queued again with it, at priority 2."""
    session = await _session(request, who, id)
    outcome = await _public(request).prompt(who, session, body.prompt)
    status = public_status(outcome.session)
    return schemas.PublicPromptReply(
        delivered=outcome.delivered,
        promptId=outcome.prompt_id,
        sessionId=schemas.item(session, 0).id,
        status=status,
        sessionStatus=status,
    )


@router.post(
    "/sessions/{id}/stop",
    response_model=None,
    responses=ok(schemas.PublicStopReply) | platform_errors(404, 409),
)
async def stop_session(id: str, request: Request, who: Writer) -> schemas.PublicStopReply:
    """Stop the session: its lease, issue lock and files are released and its worker is told
    on its next poll. A session that has already ended answers `stopped: false`."""
    session = await _session(request, who, id)
    svc = services(request)
    stopped = await _public(request).stop(who, session)
    if stopped is not None:
        await svc.managed.terminate(session.id)
    return schemas.PublicStopReply(
        stopped=stopped is not None,
        sessionId=schemas.item(session, 0).id,
        previousStatus=session.status,
        newStatus=(stopped or session).status,
    )


MISSED_COUNT_CAP = 10_000


@router.post(
    "/sessions/{id}/reconnect",
    response_model=None,
    responses=ok(schemas.PublicReconnectReply) | platform_errors(404),
)
async def reconnect_session(
    id: str, body: schemas.PublicReconnectBody, request: Request, who: Reader
) -> schemas.PublicReconnectReply:
    """A client coming back after a dropped connection: the session's status now and how
    many activities it missed after `cursor` (or `lastEventId`); it reads them from
    /session-activities. Nothing is changed."""
    session = await _session(request, who, id)
    raw = body.cursor if body.cursor is not None else body.lastEventId
    since = _cursor(None if raw is None else str(raw))
    missed = await _activities_after(services(request), session.id, since)
    return schemas.PublicReconnectReply(
        reconnected=True,
        sessionId=schemas.item(session, 0).id,
        sessionStatus=public_status(session),
        missedEvents=missed,
    )


async def _activities_after(svc: Services, session_id: str, since: int) -> int:
    count = 0
    while count < MISSED_COUNT_CAP:
        _, events = await svc.dispatcher.channel.timeline(session_id, since, 500)
        if not events:
            break
        count += sum(1 for e in events if schemas.activity(e) is not None)
        since = events[-1].id or since  # a stored event always has its id
    return min(count, MISSED_COUNT_CAP)


@router.get(
    "/session-activities",
    response_model=None,
    responses=ok(schemas.PublicActivityPage) | platform_errors(404),
    # Anonymous too ({}): with the session's raw id and its session hash.
    openapi_extra={
        "security": [*security(ADMIN_KEY, ORG_API_KEY, OAUTH2, RUNTIME_TOKEN)["security"], {}]
    },
)
async def session_activities(
    request: Request,
    sessionId: Annotated[
        str | None, Query(max_length=64, description="Raw or public session id")
    ] = None,
    sessionHash: Annotated[
        str | None, Query(max_length=32, description="For a caller without a key")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=20, description="Last activity id")] = None,
    after: Annotated[str | None, Query(max_length=20, description="Alias of cursor")] = None,
) -> schemas.PublicActivityPage:
    """A session's activities, oldest first, after `cursor`. Three ways in: an
    organisation's key (raw or public id); a worker's runtime JWT (raw id, its own
    organisation's and project's sessions); no key, with the raw id and the session hash."""
    token = bearer(request)
    worker = await _worker_jwt(request) if token is not None and token.count(".") == 2 else None
    if worker is not None:
        if not sessionId:
            raise ApiError(400, "sessionId is required")
        session = await services(request).dispatcher.visible_session(sessionId, worker.actor)
    elif sessionHash is None or token is not None:
        who = await reader(request)
        if not sessionId:
            raise ApiError(400, "sessionId is required")
        session = await _session(request, who, sessionId)
    else:
        if not SESSION_HASH.match(sessionHash):
            raise ApiError(400, "sessionHash: must be 32 lowercase hex digits")
        if not sessionId:
            raise ApiError(400, "sessionId is required")
        try:
            session = await _public(request).by_hash(sessionId, sessionHash)
        except SessionNotFound:
            raise ApiError(401, "Invalid session hash") from None
    since = _cursor(cursor if cursor is not None else after)
    _, events = await services(request).dispatcher.channel.timeline(session.id, since, 500)
    found = [a for a in (schemas.activity(e) for e in events) if a is not None]
    last = str(events[-1].id) if events else (str(since) if since else None)
    return schemas.PublicActivityPage(
        activities=found, cursor=last, sessionStatus=public_status(session)
    )


async def _worker_jwt(request: Request) -> WorkerCaller | None:
    """The worker, if the bearer token is its runtime JWT (not an M2M access token)."""
    try:
        caller = await authenticate(request)
    except ApiError:
        return None
    return caller if caller.runtime is not None else None


def _cursor(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or int(raw) > INT64_MAX:
        raise ApiError(400, "cursor: must be the id of an activity (a non-negative integer)")
    return int(raw)
