"""Veryfront runs, the user side (`veryfront/runs`): create, read, events (JSON pages or a
live SSE stream), cancel, and a project's runs."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from shopfloor.api.envelope import INT64_MAX, ApiError
from shopfloor.api.openapi import json_body
from shopfloor.api.veryfront import parse
from shopfloor.api.veryfront.admission import admission
from shopfloor.api.veryfront.auth import (
    WRONG_PROJECT,
    VfCaller,
    named_project,
    require_project,
    run_service,
    vf_caller,
)
from shopfloor.api.veryfront.user_schemas import (
    USER_ERRORS,
    VERYFRONT_USER,
    CancelRunResponse,
    CreateRunRequest,
    CreateRunResponse,
    Run,
    RunEventList,
    RunList,
    reply,
)
from shopfloor.api.veryfront.wire import canonical_run_view, event_view, page_info
from shopfloor.service.live_feed import CutOff, Ended, Quiet
from shopfloor.service.runs import RunService, RunState, watch_key
from shopfloor.store.run_records import RunEventRecord

router = APIRouter(tags=[VERYFRONT_USER], responses=USER_ERRORS)
Caller = Annotated[VfCaller, Depends(vf_caller)]

EVENTS_DEFAULT, EVENTS_MAX = 100, 1000
RUNS_DEFAULT, RUNS_MAX = 20, 100
SSE_KEEPALIVE_SECONDS = 15.0
# A stream ends after this long (the client resumes from Last-Event-ID), so that no
# connection outlives a server's shutdown by more than this.
SSE_MAX_SECONDS = 300.0


def user_only(caller: VfCaller, what: str) -> None:
    """Refuse a worker token on a call a person makes with a project token."""
    if caller.worker is not None:
        raise ApiError(403, f"{what} with a project token")


@router.post(
    "/runs",
    status_code=202,
    response_model=None,
    responses=reply(CreateRunResponse, 202),
    openapi_extra=json_body(CreateRunRequest),
)
async def create_run(request: Request, caller: Caller) -> JSONResponse:
    """Queue a run: an agent run for a conversation or a project, or a task, workflow or
    eval run. A repeated `public_id` or `Idempotency-Key` returns the same run."""
    user_only(caller, "Admit runs")
    body = parse.parse_json(await request.body())
    new = admission(body, request.headers.get("idempotency-key"))
    runs = run_service(request)
    project, conversation = await runs.admission_project(new, caller.project, caller.org_id)
    slug_org = conversation.org_id if conversation is not None else caller.slug_org
    org = await require_project(request, caller, project, slug_org)
    if conversation is not None and conversation.org_id != org:
        raise ApiError(403, WRONG_PROJECT)  # (the admin key: one organisation's each)
    admitted = await runs.admit(new, project, conversation, org)
    view = canonical_run_view(admitted.state)
    return JSONResponse(
        {
            "id": view["run_id"],
            "run_id": view["run_id"],
            "status": view["status"],
            "accepted": True,
            "duplicate": admitted.duplicate,
            "run": view,
        },
        status_code=202,
    )


async def _readable(request: Request, run_id: str, caller: VfCaller) -> RunState:
    state = await run_service(request).state(parse.run_id_param(run_id))
    caller.require_run(state)
    return state


@router.get("/runs/{run_id}", response_model=None, responses=reply(Run))
async def read_run(run_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    """The run (by its run id, which is the `public_id` it was created with)."""
    return canonical_run_view(await _readable(request, run_id, caller))


@router.post(
    "/runs/{run_id}/cancel", response_model=None, responses=reply(CancelRunResponse, 200, 409)
)
async def cancel_run(run_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    """Cancel a queued or running run; one that has ended is left as it is
    (`cancelled: false`)."""
    user_only(caller, "Cancel runs")
    await _readable(request, run_id, caller)
    cancelled, state = await run_service(request).cancel(run_id)
    return {"cancelled": cancelled, "run": canonical_run_view(state)}


@router.get(
    "/runs/{run_id}/events",
    response_model=None,
    responses={
        200: {
            "model": RunEventList,
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "JSON pages, or with `Accept: text/event-stream` the events as "
            "they are appended (`id` = event_id, `event` = event_type, `data` = the RunEvent), "
            "resuming after `Last-Event-ID`; a last `run.ended` event carries the Run.",
        },
    },
)
async def read_run_events(
    run_id: str,
    request: Request,
    caller: Caller,
    after_event_id: Annotated[
        str | None, Query(description="Return events whose event_id is greater (integer)")
    ] = None,
    limit: Annotated[str | None, Query(description="1-1000, default 100")] = None,
) -> Any:
    """A run's events in event_id order."""
    state = await _readable(request, run_id, caller)
    after = parse.query_int(after_event_id, "after_event_id", 0, INT64_MAX, 0)
    if "text/event-stream" in request.headers.get("accept", ""):
        last = request.headers.get("last-event-id")
        if last is not None:
            after = parse.query_int(last.strip(), "Last-Event-ID", 0, INT64_MAX, 0)
        stream = _stream(run_service(request), state, after)
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    size = parse.query_int(limit, "limit", 1, EVENTS_MAX, EVENTS_DEFAULT)
    events = await run_service(request).events(state.run.run_id, after, size + 1)
    page = events[:size]
    more = len(events) > size
    return {
        "data": [event_view(e) for e in page],
        "page_info": page_info(
            str(after) if after else None,
            str(page[-1].event_id) if more else None,
            str(max(0, after - size)) if after else None,
        ),
    }


async def _stream(runs: RunService, state: RunState, after: int) -> AsyncIterator[str]:
    """Send the run's events after `after`, then each one as it is appended; end with the
    run (or after SSE_MAX_SECONDS). The watchers of a run in this process share one reader
    (service/live_feed.py), which reads the run's state before its events and registers its
    wait for a change before each look, so nothing appended in between is missed."""
    run_id, session_id = state.run.run_id, state.run.session_id

    async def read(after_id: int, limit: int) -> list[tuple[int, str]]:
        return [(e.event_id, _event_frame(e)) for e in await runs.events(run_id, after_id, limit)]

    async def look(after_id: int, limit: int) -> tuple[list[tuple[int, str]], str | None]:
        session = await runs.store.get_session(session_id)  # first: later events still count
        items = await read(after_id, limit)
        if items or (session is not None and not session.is_terminal):
            return items, None
        view = json.dumps(canonical_run_view(await runs.state(run_id)), separators=(",", ":"))
        return items, f"event: run.ended\ndata: {view}\n\n"

    yield "retry: 1000\n\n"
    followed = runs.dispatcher.live.follow(
        watch_key(run_id),
        after,
        look,
        read,
        quiet_seconds=SSE_KEEPALIVE_SECONDS,
        lifetime_seconds=SSE_MAX_SECONDS,
    )
    try:
        async with contextlib.aclosing(followed):
            async for item in followed:
                if isinstance(item, Quiet):
                    yield ": keep-alive\n\n"
                elif isinstance(item, Ended):
                    yield item.value
                else:
                    yield "".join(frame for _, frame in item)
    except CutOff:
        return  # the client resumes from the last event id it got


def _event_frame(event: RunEventRecord) -> str:
    data = json.dumps(event_view(event), separators=(",", ":"))
    return f"id: {event.event_id}\nevent: {event.type}\ndata: {data}\n\n"


@router.get("/projects/{project_reference}/runs", response_model=None, responses=reply(RunList))
async def list_project_runs(
    project_reference: str,
    request: Request,
    caller: Caller,
    cursor: Annotated[str | None, Query(description="page_info.next of the page before")] = None,
    limit: Annotated[str | None, Query(description="1-100, default 20")] = None,
) -> dict[str, Any]:
    """A project's runs (by project UUID or slug), newest first."""
    project = named_project(caller, parse.project_reference(project_reference))
    await require_project(request, caller, project)
    size = parse.query_int(limit, "limit", 1, RUNS_MAX, RUNS_DEFAULT)
    before = None if cursor is None else _decode_cursor(cursor)
    found = await run_service(request).list_runs(project.id, before, size + 1)
    page = found[:size]
    more = len(found) > size
    last = page[-1].run if page else None
    return {
        "data": [canonical_run_view(state, worker_session=False) for state in page],
        "page_info": page_info(
            cursor,
            _encode_cursor(last.created_at, last.run_id) if more and last else None,
            None,
        ),
    }


def _encode_cursor(created_at: int, run_id: str) -> str:
    raw = json.dumps([created_at, run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise ApiError(400, "cursor must be a page_info.next value") from None
    if type(created_at) is not int or not isinstance(run_id, str):
        raise ApiError(400, "cursor must be a page_info.next value")
    return created_at, run_id
