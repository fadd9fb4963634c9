"""A session's timeline, live, as server-sent events: every entry after the one the browser
last saw (`Last-Event-ID`, so EventSource resumes after a dropped connection), then each new
one as it is written. The stream reads the database every half second while it is open, so
an entry written through any server process reaches it, and the workers' hot path does no
extra work for it. It ends with an `end` event once the session has ended and every entry has
been sent, and on its own after STREAM_SECONDS (the browser reconnects)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from shopfloor.api.state import services
from shopfloor.console.auth import current_login
from shopfloor.console.pages import visible
from shopfloor.console.timeline import entry

router = APIRouter(include_in_schema=False)  # pages, not API
LOOK_EVERY_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
STREAM_SECONDS = 300.0
BATCH = 200


@router.get("/console/sessions/{session_id}/events")
async def session_events(request: Request, session_id: str) -> Response:
    login = await current_login(request)
    if login is None:
        return Response("Sign in first", status_code=401, media_type="text/plain")
    if await visible(request, login, session_id) is None:
        return Response("No such session", status_code=404, media_type="text/plain")
    last = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    after = int(last) if last.isdigit() and len(last) < 19 else 0
    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(
        _events(request, session_id, after), media_type="text/event-stream", headers=headers
    )


async def _events(request: Request, session_id: str, after: int) -> AsyncIterator[str]:
    channel = services(request).dispatcher.channel
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + STREAM_SECONDS
    quiet_since = loop.time()
    yield "retry: 1000\n\n"
    while loop.time() < ends_at and not await request.is_disconnected():
        session, events = await channel.timeline(session_id, after, BATCH)
        for ev in events:
            after = ev.id or after
            yield f"id: {after}\nevent: entry\ndata: {json.dumps(entry(ev))}\n\n"
        if events:
            quiet_since = loop.time()
        elif session.is_terminal:
            yield f"event: end\ndata: {json.dumps({'status': session.status})}\n\n"
            return
        elif loop.time() - quiet_since > KEEPALIVE_SECONDS:
            quiet_since = loop.time()
            yield ": keepalive\n\n"
        if len(events) < BATCH:
            await asyncio.sleep(LOOK_EVERY_SECONDS)
