"""A session's timeline, live, as server-sent events for the session page: every entry after
the one the browser last saw (`Last-Event-ID`, so EventSource resumes after a dropped
connection), then each new one (service/timeline_follow.py). It ends with an `end` event once
the session has ended, and on its own after STREAM_SECONDS (the browser reconnects)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from shopfloor.api.state import services
from shopfloor.console.auth import current_login
from shopfloor.console.pages import visible
from shopfloor.console.timeline import entry
from shopfloor.service.timeline_follow import Ended, Quiet, follow

router = APIRouter(include_in_schema=False)  # pages, not API
STREAM_SECONDS = 300.0


@router.get("/console/sessions/{session_id}/events")
async def session_events(request: Request, session_id: str) -> Response:
    login = await current_login(request)
    if login is None:
        return Response("Sign in first", status_code=401, media_type="text/plain")
    if await visible(request, login, session_id) is None:
        return Response("No such session", status_code=404, media_type="text/plain")
    last = request.headers.get("last-event-id") or "0"
    after = int(last) if last.isdigit() and len(last) < 19 else 0
    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(
        _frames(request, session_id, after), media_type="text/event-stream", headers=headers
    )


async def _frames(request: Request, session_id: str, after: int) -> AsyncIterator[str]:
    dispatcher = services(request).dispatcher
    yield "retry: 1000\n\n"
    followed = follow(
        dispatcher.channel,
        dispatcher.live,
        session_id,
        after,
        gone=request.is_disconnected,
        lifetime_seconds=STREAM_SECONDS,
    )
    async for item in followed:
        if isinstance(item, Ended):
            yield f"event: end\ndata: {json.dumps({'status': item.status})}\n\n"
        elif isinstance(item, Quiet):
            yield ": keepalive\n\n"
        else:
            yield f"id: {item.id}\nevent: entry\ndata: {json.dumps(entry(item))}\n\n"
