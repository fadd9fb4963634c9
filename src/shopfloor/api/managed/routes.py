"""The managed-agents API: agents, sessions, session events (history, live stream, send),
a session's threads and the cancel of its turn. One router per dialect over the same
service, as the environment work API is: Anthropic's under /v1 (the `anthropic` SDK's
`client.beta.agents/sessions`) and Qoder's under /api/v1/cloud (`qca`'s `agents` and
`sessions`, `qoder-agent-sdk`'s cloud mode). Auth is the environment work API's: the admin
key, or a key of an organisation (`rsp_live_` limited to its environment), as Bearer (and
`x-api-key` on Anthropic's path); errors are its envelope. Agents and sessions belong to an
organisation: another organisation's key gets 404 for them and never lists them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from shopfloor.api.envelope import ApiError
from shopfloor.api.environments import wire as env_wire
from shopfloor.api.environments.auth import Caller, authenticate, require_environment
from shopfloor.api.environments.routes import Dialect
from shopfloor.api.environments.schemas import EnvironmentError
from shopfloor.api.fastlane import hot
from shopfloor.api.limits import body_limit
from shopfloor.api.managed import parse, schemas, wire
from shopfloor.api.openapi import (
    ADMIN_KEY,
    API_KEY_HEADER,
    REGISTRATION_TOKEN,
    errors,
    json_body,
    tag,
)
from shopfloor.api.state import services
from shopfloor.service.managed import events as ev
from shopfloor.service.managed.agents import Agent
from shopfloor.service.managed.scope import Scope
from shopfloor.service.managed.sessions import ManagedSessions, NewManagedSession
from shopfloor.store.managed_records import EventQuery, ManagedFilter, ManagedSessionRecord
from shopfloor.store.records import SessionEvent

STATUSES = ("idle", "running", "rescheduling", "terminated")
EVENT_TYPE = re.compile(r"^[a-z_]{1,32}\.[a-z_]{1,64}$")
EVENTS_LIMIT_MAX = 1000
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "`event: <type>` / `id:` / `data: <event object>` frames",
    },
    **errors(EnvironmentError, 404),
}


def _scope(who: Caller) -> Scope:
    return Scope(org_id=who.scope_org, environment=who.environment)


def _sessions(request: Request) -> ManagedSessions:
    return services(request).managed


def _doc(model: type[Any], *error_codes: int) -> dict[int | str, dict[str, Any]]:
    """The reply's model and the errors beyond the router's (400, 401, 403, 413)."""
    return {200: {"model": model}, **errors(EnvironmentError, *error_codes)}


def _tag(d: Dialect) -> str:
    keys = (API_KEY_HEADER,) if d.accept_x_api_key else ()
    return tag(
        d.sessions_tag,
        f"Managed-agent sessions on {d.prefix}: agents (versioned), sessions, their events "
        "(history, a live server-sent stream, send) and threads; the agent loop runs on the "
        "server, calling the model through the Messages API, and the environment's workers "
        "run the tools. The admin key or a registration token (`rsp_live_…` only in its own "
        f"environment){'; the key may also come in `x-api-key`' if keys else ''}. Errors are "
        "the environment API's envelope.",
        ADMIN_KEY,
        REGISTRATION_TOKEN,
        *keys,
    )


def managed_router(d: Dialect) -> APIRouter:
    router = APIRouter(
        prefix=d.prefix,
        tags=[_tag(d)],
        responses=errors(EnvironmentError, 400, 401, 403, 413),
    )

    async def _caller(request: Request) -> Caller:
        who = await authenticate(request, d.accept_x_api_key)
        if who.environment is not None:
            # A key limited to an environment of another organisation sees nothing there.
            await require_environment(request, who, who.environment)
        return who

    # -- agents --

    @router.post(
        "/agents",
        summary="Create an agent (version 1)",
        responses=_doc(schemas.AgentObject),
        openapi_extra=json_body(schemas.AgentCreate),
    )
    async def create_agent(request: Request) -> dict[str, Any]:
        who = await _caller(request)
        definition = parse.new_agent(await parse.body(request))
        return wire.agent(await _sessions(request).agents.create(definition, _scope(who)))

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
            _scope(who),
            include_archived=bool(env_wire.query_bool(include_archived, "include_archived")),
            after_id=_id_cursor(page, "agent_"),
            limit=env_wire.list_limit(limit),
            created_from=wire.time_bound(q.get("created_at[gte]"), "created_at[gte]"),
            created_to=wire.time_bound(q.get("created_at[lte]"), "created_at[lte]"),
        )
        data = [wire.agent(a) for a in found.items]
        return wire.page(data, data[-1]["id"] if found.has_more and data else None)

    @router.get(
        "/agents/{agent_id}", summary="Get an agent", responses=_doc(schemas.AgentObject, 404)
    )
    async def get_agent(
        agent_id: str, request: Request, version: str | None = None
    ) -> dict[str, Any]:
        who = await _caller(request)
        number = env_wire.query_int(version, "version", minimum=1)
        return wire.agent(await _sessions(request).agents.get(agent_id, _scope(who), number))

    @router.post(
        "/agents/{agent_id}",
        summary="Update an agent (makes a new version)",
        responses=_doc(schemas.AgentObject, 404, 409),
        openapi_extra=json_body(schemas.AgentUpdate),
    )
    async def update_agent(agent_id: str, request: Request) -> dict[str, Any]:
        who = await _caller(request)
        changes, patch, version = parse.agent_update(await parse.body(request, empty_ok=True))
        agents = _sessions(request).agents
        return wire.agent(await agents.update(agent_id, _scope(who), changes, patch, version))

    @router.get(
        "/agents/{agent_id}/versions",
        summary="List an agent's versions",
        responses=_doc(schemas.AgentList, 404),
    )
    async def list_agent_versions(
        agent_id: str, request: Request, limit: str | None = None, page: str | None = None
    ) -> dict[str, Any]:
        who = await _caller(request)
        after = None if page is None else env_wire.query_int(page, "page", minimum=1)
        head, versions, more = await _sessions(request).agents.versions(
            agent_id, _scope(who), after_version=after, limit=env_wire.list_limit(limit)
        )
        data = [wire.agent(Agent(head, v)) for v in versions]
        return wire.page(data, str(versions[-1].version) if more and versions else None)

    @router.post(
        "/agents/{agent_id}/archive",
        summary="Archive an agent",
        responses=_doc(schemas.AgentObject, 404, 409),
    )
    async def archive_agent(agent_id: str, request: Request) -> dict[str, Any]:
        who = await _caller(request)
        return wire.agent(await _sessions(request).agents.archive(agent_id, _scope(who)))

    # -- sessions --

    @router.post(
        "/sessions",
        summary="Create a session (queues its work item in the environment)",
        responses=_doc(schemas.SessionObject, 404),
        openapi_extra=json_body(schemas.ManagedSessionCreate),
    )
    async def create_session(request: Request) -> dict[str, Any]:
        who = await _caller(request)
        obj = await parse.body(request)
        parse.only(obj, parse.SESSION_FIELDS, "")
        if obj.get("agent") is None:
            raise ApiError(400, "agent: is required")
        environment_id = parse.string(obj.get("environment_id"), "environment_id", maximum=64)
        await require_environment(request, who, environment_id)
        parse.session_extras(obj)
        new = NewManagedSession(
            environment_id=environment_id,
            agent=parse.agent_ref(obj["agent"]),
            initial_events=parse.initial_events(obj.get("initial_events")),
            title=parse.title(obj.get("title")),
            metadata={k: v for k, v in (parse.metadata(obj, patch=False) or {}).items() if v},
            resources=parse.resources(obj.get("resources")),
        )
        return wire.session(await _sessions(request).create(new, _scope(who)))

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
            org_id=who.scope_org,
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
        "/sessions/{session_id}",
        summary="Get a session",
        responses=_doc(schemas.SessionObject, 404),
    )
    async def get_session(session_id: str, request: Request) -> dict[str, Any]:
        who = await _caller(request)
        return wire.session(await _sessions(request).get(session_id, _scope(who)))

    @router.post(
        "/sessions/{session_id}",
        summary="Update a session's title or metadata",
        responses=_doc(schemas.SessionObject, 404, 409),
        openapi_extra=json_body(schemas.ManagedSessionUpdate),
    )
    async def update_session(session_id: str, request: Request) -> dict[str, Any]:
        who = await _caller(request)
        obj = await parse.body(request, empty_ok=True)
        parse.only(obj, parse.SESSION_UPDATE_FIELDS, "")
        if obj.get("agent") is not None:
            raise ApiError(400, "agent: a session's agent cannot be changed here")
        parse.session_extras(obj)
        record = await _sessions(request).update(
            session_id,
            _scope(who),
            parse.title(obj.get("title")),
            parse.metadata(obj, patch=True),
        )
        return wire.session(record)

    @router.delete(
        "/sessions/{session_id}",
        summary="Delete a session",
        responses=_doc(schemas.DeletedSession, 404, 409),
    )
    async def delete_session(session_id: str, request: Request) -> dict[str, Any]:
        who = await _caller(request)
        await _sessions(request).delete(session_id, _scope(who))
        return {"id": session_id, "type": "session_deleted"}

    @router.post(
        "/sessions/{session_id}/archive",
        summary="Archive a session (terminates it)",
        responses=_doc(schemas.SessionObject, 404, 409),
    )
    async def archive_session(session_id: str, request: Request) -> dict[str, Any]:
        who = await _caller(request)
        return wire.session(await _sessions(request).archive(session_id, _scope(who)))

    @router.post(
        "/sessions/{session_id}/cancel",
        summary="Cancel the running turn (202); a session between turns is a no-op (200)",
        responses={
            200: {"model": schemas.SessionCanceled},
            202: {"model": schemas.SessionCanceled},
            **errors(EnvironmentError, 404, 409),
        },
    )
    async def cancel_session(session_id: str, request: Request) -> JSONResponse:
        who = await _caller(request)
        canceled = await _sessions(request).cancel(session_id, _scope(who))
        body = {"id": session_id, "type": "session", "status": "canceling"}
        return JSONResponse(body, status_code=202 if canceled else 200)

    # -- events --

    @router.get(
        "/sessions/{session_id}/events",
        summary="A session's events, oldest first",
        responses=_doc(schemas.EventList, 404),
    )
    async def list_events(
        session_id: str,
        request: Request,
        limit: str | None = None,
        page: str | None = None,
        order: str | None = None,
        after_id: str | None = None,
        before_id: str | None = None,
    ) -> dict[str, Any]:
        who = await _caller(request)
        return await _events_page(request, session_id, who, limit, page, order, after_id, before_id)

    @router.post(
        "/sessions/{session_id}/events",
        summary="Send events (user messages, tool results, confirmations, interrupts)",
        responses=_doc(schemas.EventsSent, 404, 409),
        openapi_extra=json_body(schemas.EventsSend),
    )
    @hot  # the worker posts every tool result here
    @body_limit(parse.EVENTS_BODY_MAX)
    async def send_events(session_id: str, request: Request) -> dict[str, Any]:
        who = await _caller(request)
        inputs = parse.events(await parse.body(request))
        stored = await _sessions(request).send(
            session_id, _scope(who), inputs, refuse_busy=d.refuse_busy_input
        )
        return {"data": [wire.event(e) for e in stored]}

    @router.get(
        "/sessions/{session_id}/events/stream",
        summary="Stream a session's events (server-sent events; resume with after_id or "
        "Last-Event-ID)",
        response_class=StreamingResponse,
        responses=SSE_DOC,
    )
    async def stream_events(
        session_id: str, request: Request, after_id: str | None = None
    ) -> StreamingResponse:
        who = await _caller(request)
        return await _stream(request, session_id, who, after_id)

    # -- threads: a session runs one, its primary thread --

    @router.get(
        "/sessions/{session_id}/threads",
        summary="A session's threads (its primary thread)",
        responses=_doc(schemas.ThreadList, 404),
    )
    async def list_threads(
        session_id: str, request: Request, limit: str | None = None, page: str | None = None
    ) -> dict[str, Any]:
        who = await _caller(request)
        record = await _sessions(request).get(session_id, _scope(who))
        env_wire.list_limit(limit)
        primary = wire.thread(record)
        if page is not None and page != primary["id"]:
            raise ApiError(400, "page: is not a valid cursor")
        return wire.page([] if page is not None else [primary], None)

    @router.get(
        "/sessions/{session_id}/threads/{thread_id}",
        summary="Get a thread",
        responses=_doc(schemas.ThreadObject, 404),
    )
    async def get_thread(session_id: str, thread_id: str, request: Request) -> dict[str, Any]:
        who = await _caller(request)
        return wire.thread(await _thread(request, session_id, thread_id, who))

    @router.post(
        "/sessions/{session_id}/threads/{thread_id}/archive",
        summary="Archive a thread (the primary thread ends only with its session)",
        responses=_doc(schemas.ThreadObject, 404),
    )
    async def archive_thread(session_id: str, thread_id: str, request: Request) -> dict[str, Any]:
        who = await _caller(request)
        await _thread(request, session_id, thread_id, who)
        raise ApiError(
            400,
            f"thread_id: {thread_id} is the session's primary thread, which ends only with "
            "its session; archive the session instead",
        )

    @router.get(
        "/sessions/{session_id}/threads/{thread_id}/events",
        summary="A thread's events, oldest first",
        responses=_doc(schemas.EventList, 404),
    )
    async def list_thread_events(
        session_id: str,
        thread_id: str,
        request: Request,
        limit: str | None = None,
        page: str | None = None,
        order: str | None = None,
        after_id: str | None = None,
        before_id: str | None = None,
    ) -> dict[str, Any]:
        who = await _caller(request)
        await _thread(request, session_id, thread_id, who)
        return await _events_page(request, session_id, who, limit, page, order, after_id, before_id)

    @router.get(
        "/sessions/{session_id}/threads/{thread_id}/stream",
        summary="Stream a thread's events (server-sent events)",
        response_class=StreamingResponse,
        responses=SSE_DOC,
    )
    async def stream_thread(
        session_id: str, thread_id: str, request: Request, after_id: str | None = None
    ) -> StreamingResponse:
        who = await _caller(request)
        await _thread(request, session_id, thread_id, who)
        return await _stream(request, session_id, who, after_id)

    return router


async def _thread(
    request: Request, session_id: str, thread_id: str, who: Caller
) -> ManagedSessionRecord:
    record = await _sessions(request).get(session_id, _scope(who))
    if thread_id != wire.thread_id(session_id):
        raise ApiError(404, f"Thread {thread_id} not found")
    return record


async def _events_page(
    request: Request,
    session_id: str,
    who: Caller,
    limit: str | None,
    page: str | None,
    order: str | None,
    after_id: str | None,
    before_id: str | None,
) -> dict[str, Any]:
    """A page of the session's events. `after_id` / `before_id` (event ids) bound it;
    `page` (a previous page's `next_page`) goes on from where that page ended, within the
    same bounds."""
    sessions = _sessions(request)
    await sessions.get(session_id, _scope(who))
    q = request.query_params
    kinds = tuple(q.getlist("types[]") + q.getlist("types"))
    for kind in kinds:
        # Any event type may be asked for (the SDKs ask for kinds shopfloor never makes,
        # such as thread events); what is not a wire event of ours matches nothing.
        if not EVENT_TYPE.match(kind):
            raise ApiError(400, f"types: {kind!r} is not an event type")
    count = env_wire.query_int(limit, "limit", minimum=1)
    descending = wire.order(order) is True
    at_after, at_before = _created_bounds(request)
    cursor = wire.event_cursor(page)
    if cursor is not None and (after_id is not None or before_id is not None):
        raise ApiError(400, "page: cannot be combined with after_id or before_id")
    above = None if after_id is None else await sessions.position(session_id, after_id, "after_id")
    below = (
        None if before_id is None else await sessions.position(session_id, before_id, "before_id")
    )
    position = None
    if cursor is not None:
        position, far = cursor
        above, below = (far, None) if descending else (None, far)
    query = EventQuery(
        kinds=tuple(k for k in kinds if k in ev.WIRE_KINDS) if kinds else ev.WIRE_KINDS,
        after_id=position,
        above=above,
        below=below,
        descending=descending,
        at_after=at_after,
        at_before=at_before,
        limit=min(count or EVENTS_LIMIT_MAX, EVENTS_LIMIT_MAX),
    )
    found = await sessions.events(session_id, _scope(who), query)
    last = found.items[-1].id if found.items else None
    next_page = None
    if found.has_more and last is not None:
        next_page = wire.next_event_cursor(last, above if descending else below)
    return wire.page([wire.event(e) for e in found.items], next_page)


async def _stream(
    request: Request, session_id: str, who: Caller, after_id: str | None
) -> StreamingResponse:
    """The live stream; a client resumes after an event it saw, naming it as `after_id`
    (qoder-agent-sdk) or in the `Last-Event-ID` header (qca, and SSE clients generally)."""
    name, resume = "after_id", after_id
    if resume is None:
        header = request.headers.get("last-event-id", "").strip()
        name, resume = "Last-Event-ID", header or None
    batches = await _sessions(request).stream(session_id, _scope(who), resume, name)
    return StreamingResponse(_frames(batches), media_type="text/event-stream", headers=SSE_HEADERS)


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
