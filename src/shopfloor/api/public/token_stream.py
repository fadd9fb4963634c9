"""`GET /api/public/sessions/{id}/token-stream`: a session's interview token-delta frames as
server-sent events (`event: token-delta`, `id:` the batch's, `data: {"turnId", "frames"}`),
from the moment of the call or, resuming, after `Last-Event-ID`; `: ping` comments in quiet
spells; ends when the session ends. `sessions:read`, the caller's own sessions only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from shopfloor.api.envelope import INT64_MAX, ApiError
from shopfloor.api.public.errors import platform_errors
from shopfloor.api.public.routes import PUBLIC_API, reader
from shopfloor.api.state import services
from shopfloor.service.actors import Principal
from shopfloor.service.public_sessions import PublicSessions
from shopfloor.service.token_deltas import TokenDeltas
from shopfloor.store.records import SessionEvent

router = APIRouter(
    prefix="/api/public", tags=[PUBLIC_API], responses=platform_errors(400, 401, 403, 413)
)
Reader = Annotated[Principal, Depends(reader)]
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@router.get(
    "/sessions/{id}/token-stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": '`event: token-delta` / `id:` / `data: {"turnId", "frames"}`',
        },
        **platform_errors(404),
    },
)
async def token_stream(id: str, request: Request, who: Reader) -> StreamingResponse:
    if not id or len(id) > 64:
        raise ApiError(400, "Invalid session ID format")
    svc = services(request)
    session = await PublicSessions(svc.dispatcher).find(who, id)
    deltas = TokenDeltas(svc.dispatcher.store, svc.clock, svc.dispatcher.notifier)
    cursor = await deltas.start(session.id, _last_event_id(request))
    batches = deltas.follow(session.id, cursor, svc.settings.stream_keepalive_seconds)
    return StreamingResponse(_frames(batches), media_type="text/event-stream", headers=SSE_HEADERS)


def _last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) > INT64_MAX:
        raise ApiError(400, "Last-Event-ID: must be the id of a token-delta event")
    return int(raw)


async def _frames(batches: AsyncIterator[list[SessionEvent]]) -> AsyncIterator[bytes]:
    yield b": stream open\n\n"
    async for batch in batches:
        if not batch:
            yield b": ping\n\n"
        for e in batch:
            yield f"event: token-delta\nid: {e.id}\ndata: {json.dumps(e.data)}\n\n".encode()
