"""The managed-agents API of the `anthropic` SDK: agents, sessions and session events
(history, live stream, send). Auth is the environment work API's: the admin key, or a
registration token (`rsp_live_` limited to its environment), as Bearer or `x-api-key`; errors
are its envelope (the paths are under /v1/)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from shopfloor.api.envelope import ApiError
from shopfloor.api.environments import wire as env_wire
from shopfloor.api.environments.auth import Caller, authenticate, require_environment
from shopfloor.api.fastlane import hot
from shopfloor.api.limits import body_limit
from shopfloor.api.managed import parse, schemas, wire
from shopfloor.api.state import services
from shopfloor.service.managed import events as ev
from shopfloor.service.managed.agents import Agent
from shopfloor.service.managed.sessions import ManagedSessions, NewManagedSession
from shopfloor.store.managed_records import EventQuery, ManagedFilter
from shopfloor.store.records import SessionEvent

STATUSES = ("idle", "running", "rescheduling", "terminated")
EVENT_TYPE = re.compile(r"^[a-z_]{1,32}\.[a-z_]{1,64}$")
EVENTS_LIMIT_MAX = 1000

router = APIRouter(prefix="/v1", tags=["Managed agents"])


async def _caller(request: Request) -> Caller:
    return await authenticate(request, accept_x_api_key=True)


def _sessions(request: Request) -> ManagedSessions:
    return services(request).managed


def _doc(model: type[Any]) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model}}


# -- agents --


@router.post(
    "/agents",
    summary="Create an agent (version 1)",
    responses=_doc(schemas.AgentObject),
    openapi_extra=schemas.request_body(schemas.AgentCreate),
)
async def create_agent(request: Request) -> dict[str, Any]:
    who = await _caller(request)
    definition = parse.new_agent(await parse.body(request))
    return wire.agent(await _sessions(request).agents.create(definition, who.environment))


@router.get("/agents", summary="List agents", responses=_doc(schemas.AgentList))
async def list_agents(
    request: Request,
    limit: str | None = None,
    page: str | None = None,
    include_archived: str | None = None,
) -> dict[str, Any]:
    who = await _caller(request)
    q = request.query_params
    found = await _sessions(request).agents.list_page(
        who.environment,
        include_archived=bool(env_wire.query_bool(include_archived, "include_archived")),
        after_id=_id_cursor(page, "agent_"),
        limit=env_wire.list_limit(limit),
        created_from=wire.time_bound(q.get("created_at[gte]"), "created_at[gte]"),
        created_to=wire.time_bound(q.get("created_at[lte]"), "created_at[lte]"),
    )
    data = [wire.agent(a) for a in found.items]
    return wire.page(data, data[-1]["id"] if found.has_more and data else None)


@router.get("/agents/{agent_id}", summary="Get an agent", responses=_doc(schemas.AgentObject))
async def get_agent(agent_id: str, request: Request, version: str | None = None) -> dict[str, Any]:
    who = await _caller(request)
    number = env_wire.query_int(version, "version", minimum=1)
    return wire.agent(await _sessions(request).agents.get(agent_id, who.environment, number))


@router.post(
    "/agents/{agent_id}",
    summary="Update an agent (makes a new version)",
    responses=_doc(schemas.AgentObject),
    openapi_extra=schemas.request_body(schemas.AgentUpdate),
)
async def update_agent(agent_id: str, request: Request) -> dict[str, Any]:
    who = await _caller(request)
    changes, patch, version = parse.agent_update(await parse.body(request, empty_ok=True))
    agents = _sessions(request).agents
    return wire.agent(await agents.update(agent_id, who.environment, changes, patch, version))


@router.get(
    "/agents/{agent_id}/versions",
    summary="List an agent's versions",
    responses=_doc(schemas.AgentList),
)
async def list_agent_versions(
    agent_id: str, request: Request, limit: str | None = None, page: str | None = None
) -> dict[str, Any]:
    who = await _caller(request)
    after = None if page is None else env_wire.query_int(page, "page", minimum=1)
    head, versions, more = await _sessions(request).agents.versions(
        agent_id, who.environment, after_version=after, limit=env_wire.list_limit(limit)
    )
    data = [wire.agent(Agent(head, v)) for v in versions]
    return wire.page(data, str(versions[-1].version) if more and versions else None)


@router.post(
    "/agents/{agent_id}/archive", summary="Archive an agent", responses=_doc(schemas.AgentObject)
)
async def archive_agent(agent_id: str, request: Request) -> dict[str, Any]:
    who = await _caller(request)
    return wire.agent(await _sessions(request).agents.archive(agent_id, who.environment))


# -- sessions --


@router.post(
    "/sessions",
    summary="Create a session (queues its work item in the environment)",
    responses=_doc(schemas.SessionObject),
    openapi_extra=schemas.request_body(schemas.SessionCreate),
)
async def create_session(request: Request) -> dict[str, Any]:
    who = await _caller(request)
    obj = await parse.body(request)
    parse.only(obj, parse.SESSION_FIELDS, "")
    if obj.get("agent") is None:
        raise ApiError(400, "agent: is required")
    environment_id = parse.string(obj.get("environment_id"), "environment_id", maximum=64)
    require_environment(who, environment_id)
    parse.session_extras(obj)
    new = NewManagedSession(
        environment_id=environment_id,
        agent=parse.agent_ref(obj["agent"]),
        initial_events=parse.initial_events(obj.get("initial_events")),
        title=parse.title(obj.get("title")),
        metadata={k: v for k, v in (parse.metadata(obj, patch=False) or {}).items() if v},
        resources=parse.resources(obj.get("resources")),
    )
    return wire.session(await _sessions(request).create(new, who.environment))


@router.get("/sessions", summary="List sessions", responses=_doc(schemas.SessionList))
async def list_sessions(
    request: Request,
    limit: str | None = None,
    page: str | None = None,
    order: str | None = None,
    agent_id: str | None = None,
    agent_version: str | None = None,
    include_archived: str | None = None,
) -> dict[str, Any]:
    who = await _caller(request)
    q = request.query_params
    statuses = tuple(q.getlist("statuses[]") + q.getlist("statuses"))
    for status in statuses:
        if status not in STATUSES:
            raise ApiError(400, f"statuses: must be among {', '.join(STATUSES)}")
    after, before = _created_bounds(request)
    flt = ManagedFilter(
        environment_id=who.environment,
        agent_id=agent_id,
        agent_version=env_wire.query_int(agent_version, "agent_version", minimum=1),
        statuses=statuses,
        include_archived=bool(env_wire.query_bool(include_archived, "include_archived")),
        created_after=after,
        created_before=before,
        after_id=_id_cursor(page, "sess_"),
        descending=wire.order(order) is not False,
        limit=env_wire.list_limit(limit),
    )
    found = await _sessions(request).list_page(flt)
    data = [wire.session(m) for m in found.items]
    return wire.page(data, data[-1]["id"] if found.has_more and data else None)


@router.get(
    "/sessions/{session_id}", summary="Get a session", responses=_doc(schemas.SessionObject)
)
async def get_session(session_id: str, request: Request) -> dict[str, Any]:
    who = await _caller(request)
    return wire.session(await _sessions(request).get(session_id, who.environment))


@router.post(
    "/sessions/{session_id}",
    summary="Update a session's title or metadata",
    responses=_doc(schemas.SessionObject),
    openapi_extra=schemas.request_body(schemas.SessionUpdate),
)
async def update_session(session_id: str, request: Request) -> dict[str, Any]:
    who = await _caller(request)
    obj = await parse.body(request, empty_ok=True)
    parse.only(obj, ("title", "metadata", "agent", "vault_ids", "budget"), "")
    if obj.get("agent") is not None:
        raise ApiError(400, "agent: a session's agent cannot be changed here")
    parse.session_extras(obj)
    record = await _sessions(request).update(
        session_id, who.environment, parse.title(obj.get("title")), parse.metadata(obj, patch=True)
    )
    return wire.session(record)


@router.delete(
    "/sessions/{session_id}", summary="Delete a session", responses=_doc(schemas.DeletedSession)
)
async def delete_session(session_id: str, request: Request) -> dict[str, Any]:
    who = await _caller(request)
    await _sessions(request).delete(session_id, who.environment)
    return {"id": session_id, "type": "session_deleted"}


@router.post(
    "/sessions/{session_id}/archive",
    summary="Archive a session (terminates it)",
    responses=_doc(schemas.SessionObject),
)
async def archive_session(session_id: str, request: Request) -> dict[str, Any]:
    who = await _caller(request)
    return wire.session(await _sessions(request).archive(session_id, who.environment))


# -- events --


@router.get(
    "/sessions/{session_id}/events",
    summary="A session's events, oldest first",
    responses=_doc(schemas.EventList),
)
async def list_events(
    session_id: str,
    request: Request,
    limit: str | None = None,
    page: str | None = None,
    order: str | None = None,
) -> dict[str, Any]:
    who = await _caller(request)
    q = request.query_params
    kinds = tuple(q.getlist("types[]") + q.getlist("types"))
    for kind in kinds:
        # Any event type may be asked for (the SDK asks for kinds shopfloor never makes, such
        # as thread events); what is not a wire event of ours matches nothing.
        if not EVENT_TYPE.match(kind):
            raise ApiError(400, f"types: {kind!r} is not an event type")
    count = env_wire.query_int(limit, "limit", minimum=1)
    after, before = _created_bounds(request)
    query = EventQuery(
        kinds=tuple(k for k in kinds if k in ev.WIRE_KINDS) if kinds else ev.WIRE_KINDS,
        after_id=wire.event_cursor(page),
        descending=wire.order(order) is True,
        at_after=after,
        at_before=before,
        limit=min(count or EVENTS_LIMIT_MAX, EVENTS_LIMIT_MAX),
    )
    found = await _sessions(request).events(session_id, who.environment, query)
    last = found.items[-1].id if found.items else None
    cursor = f"ev_{last}" if found.has_more and last is not None else None
    return wire.page([wire.event(e) for e in found.items], cursor)


@router.post(
    "/sessions/{session_id}/events",
    summary="Send events (user messages, tool results, confirmations, interrupts)",
    responses=_doc(schemas.EventsSent),
    openapi_extra=schemas.request_body(schemas.EventsSend),
)
@hot  # the worker posts every tool result here
@body_limit(parse.EVENTS_BODY_MAX)
async def send_events(session_id: str, request: Request) -> dict[str, Any]:
    who = await _caller(request)
    inputs = parse.events(await parse.body(request))
    stored = await _sessions(request).send(session_id, who.environment, inputs)
    return {"data": [wire.event(e) for e in stored]}


@router.get(
    "/sessions/{session_id}/events/stream",
    summary="Stream a session's events (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "event: <type> frames"}},
)
async def stream_events(session_id: str, request: Request) -> StreamingResponse:
    who = await _caller(request)
    batches = await _sessions(request).stream(session_id, who.environment)
    return StreamingResponse(
        _frames(batches),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _frames(batches: AsyncIterator[list[SessionEvent]]) -> AsyncIterator[bytes]:
    yield b": stream open\n\n"
    async for batch in batches:
        if not batch:
            yield wire.PING
        for e in batch:
            yield wire.sse_frame(e)


# -- parameters --


def _id_cursor(raw: str | None, prefix: str) -> str | None:
    if raw is None:
        return None
    if not raw.startswith(prefix) or len(raw) > 64 or not raw[len(prefix) :].isalnum():
        raise ApiError(400, "page: is not a valid cursor")
    return raw


def _created_bounds(request: Request) -> tuple[int | None, int | None]:
    """created_at[gt|gte|lt|lte] as exclusive bounds in milliseconds."""
    q = request.query_params
    after = before = None
    for name, shift, lower in (
        ("gt", 0, True),
        ("gte", -1, True),
        ("lt", 0, False),
        ("lte", 1, False),
    ):
        key = f"created_at[{name}]"
        bound = wire.time_bound(q.get(key), key)
        if bound is None:
            continue
        if lower:
            after = bound + shift if after is None else max(after, bound + shift)
        else:
            before = bound + shift if before is None else min(before, bound + shift)
    return after, before
