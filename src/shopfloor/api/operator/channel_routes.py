"""Operator API for a session's channel: stop it, prompt it, nudge it, read its timeline,
its inbox and its crash-recovery chain."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictStr

from shopfloor.api.envelope import INT64_MAX, ApiError
from shopfloor.api.openapi import ADMIN_KEY, OAUTH2, ORG_API_KEY, af_errors, tag
from shopfloor.api.operator.auth import scoped
from shopfloor.api.operator.routes import visible_session
from shopfloor.api.operator.schemas import RequestBody, SessionView
from shopfloor.api.state import services
from shopfloor.api.timefmt import iso
from shopfloor.service.actors import Principal
from shopfloor.service.channel import SessionChannel
from shopfloor.service.timeline_follow import Ended, Quiet, follow
from shopfloor.store.records import InboxMessage, RecoveryPacket, SessionEvent

OPERATOR_CHANNEL = tag(
    "Operator API: session channel",
    "Stop, prompt or nudge a running session; read its inbox, its timeline and its "
    "crash-recovery packets. The admin key, or an organisation's key or access token with "
    '`sessions:read` / `sessions:write` on its own sessions. Errors are `{"error", "message"}`.',
    ADMIN_KEY,
    ORG_API_KEY,
    OAUTH2,
)
router = APIRouter(
    prefix="/api/v1",
    tags=[OPERATOR_CHANNEL],
    responses=af_errors(400, 401, 403, 404, 413),
)
SessionsRead = Annotated[Principal, Depends(scoped("sessions:read"))]
SessionsWrite = Annotated[Principal, Depends(scoped("sessions:write"))]


class Sender(RequestBody):
    """Who sends a message: as the caller reports it (a console user, the person behind an
    integration), else the credential's own identity."""

    userId: StrictStr | None = Field(None, min_length=1, max_length=200)
    userName: StrictStr | None = Field(None, max_length=200)

    def user_id(self, who: Principal) -> str:
        return self.userId or who.identity


class StopRequest(Sender):
    reason: StrictStr | None = Field(None, max_length=2000)


class PromptRequest(Sender):
    text: StrictStr = Field(
        min_length=1, max_length=100_000, description="Delivered as a directive"
    )


class NudgeRequest(Sender):
    text: StrictStr | None = Field(None, max_length=10_000)


class InboxMessageView(BaseModel):
    id: str
    sessionId: str
    type: str
    lane: str
    payload: str
    userId: str | None
    userName: str | None
    createdAt: str
    deliveredAt: str | None
    deliveryCount: int
    ackedAt: str | None
    archivedAt: str | None

    @classmethod
    def of(cls, m: InboxMessage) -> InboxMessageView:
        return cls(
            id=m.id,
            sessionId=m.session_id,
            type=m.type,
            lane=m.lane,
            payload=m.payload,
            userId=m.user_id,
            userName=m.user_name,
            createdAt=iso(m.created_at) or "",
            deliveredAt=iso(m.delivered_at),
            deliveryCount=m.delivery_count,
            ackedAt=iso(m.acked_at),
            archivedAt=iso(m.archived_at),
        )


class TimelineEntry(BaseModel):
    id: int
    type: str = Field(description="status, activity, progress, completion, external-urls, …")
    at: str
    workerId: str | None
    status: str | None
    reason: str | None
    data: dict[str, Any]

    @classmethod
    def of(cls, ev: SessionEvent) -> TimelineEntry:
        return cls(
            id=ev.id or 0,
            type=ev.kind,
            at=iso(ev.at) or "",
            workerId=ev.worker_id,
            status=ev.status,
            reason=ev.reason,
            data=ev.data,
        )


class Timeline(BaseModel):
    sessionId: str
    status: str
    activities: list[TimelineEntry] = Field(description="Oldest first")
    nextCursor: int = Field(description="Pass as `after` to read only newer entries")


class RecoveryChain(BaseModel):
    sessionId: str
    packets: list[dict[str, Any]] = Field(description="Oldest first, newest last")


def _channel(request: Request) -> SessionChannel:
    return services(request).dispatcher.channel


def packet_view(p: RecoveryPacket) -> dict[str, Any]:
    return {**p.data, "packetId": p.id, "attempt": p.attempt, "createdAt": iso(p.created_at)}


@router.post("/sessions/{session_id}/stop", response_model=SessionView, responses=af_errors(409))
async def stop_session(
    session_id: str, request: Request, who: SessionsWrite, body: StopRequest | None = None
) -> SessionView:
    body = body or StopRequest(userId=None, userName=None, reason=None)
    await visible_session(request, who, session_id)
    svc = services(request)
    dispatcher = svc.dispatcher
    session = await dispatcher.channel.stop(
        session_id, body.reason, user_id=body.user_id(who), user_name=body.userName
    )
    # A managed session ends with its row: its agent loop stops, its clients are told.
    await svc.managed.terminate(session_id)
    return SessionView.of(session, await dispatcher.history(session_id))


@router.post(
    "/sessions/{session_id}/prompt",
    status_code=201,
    response_model=InboxMessageView,
    responses=af_errors(409),
)
async def prompt_session(
    session_id: str, body: PromptRequest, request: Request, who: SessionsWrite
) -> InboxMessageView:
    await visible_session(request, who, session_id)
    message = await _channel(request).send(
        session_id, "directive", body.text, user_id=body.user_id(who), user_name=body.userName
    )
    return InboxMessageView.of(message)


@router.post(
    "/sessions/{session_id}/nudge",
    status_code=201,
    response_model=InboxMessageView,
    responses=af_errors(409),
)
async def nudge_session(
    session_id: str, request: Request, who: SessionsWrite, body: NudgeRequest | None = None
) -> InboxMessageView:
    body = body or NudgeRequest(userId=None, userName=None, text=None)
    await visible_session(request, who, session_id)
    message = await _channel(request).send(
        session_id, "nudge", body.text or "", user_id=body.user_id(who), user_name=body.userName
    )
    return InboxMessageView.of(message)


@router.get("/sessions/{session_id}/inbox", response_model=list[InboxMessageView])
async def session_inbox(
    session_id: str, request: Request, who: SessionsRead
) -> list[InboxMessageView]:
    channel = _channel(request)
    await visible_session(request, who, session_id)
    return [InboxMessageView.of(m) for m in await channel.store.list_inbox(session_id)]


@router.get("/sessions/{session_id}/activity", response_model=Timeline)
async def session_activity(
    session_id: str,
    request: Request,
    who: SessionsRead,
    after: Annotated[
        int, Query(ge=0, le=INT64_MAX, description="Only entries with a larger id")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Timeline:
    await visible_session(request, who, session_id)
    session, events = await _channel(request).timeline(session_id, after, limit)
    return Timeline(
        sessionId=session.id,
        status=session.status,
        activities=[TimelineEntry.of(e) for e in events],
        nextCursor=events[-1].id or after if events else after,
    )


STREAM_SECONDS = 600.0
STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "model": Timeline,
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "With `Accept: text/event-stream`: `id: <entry id>` / `event: timeline` / "
        "`data: <TimelineEntry>` frames, oldest first, then each new one; a last `event: end` "
        'with `{"sessionId", "status"}` once the session has ended. Resume with '
        "`Last-Event-ID` (or `after`); a stream ends on its own after 10 minutes. Without "
        "that Accept: one page, as `/activity` answers it.",
    }
}


@router.get(
    "/sessions/{session_id}/events",
    response_model=None,
    responses=STREAM_DOC,
    summary="Follow a session's timeline (server-sent events)",
)
async def session_events(
    session_id: str,
    request: Request,
    who: SessionsRead,
    after: Annotated[
        int, Query(ge=0, le=INT64_MAX, description="Only entries with a larger id")
    ] = 0,
) -> Timeline | StreamingResponse:
    if "text/event-stream" not in request.headers.get("accept", ""):
        return await session_activity(session_id, request, who, after)
    await visible_session(request, who, session_id)
    last = request.headers.get("last-event-id")
    if last is not None:
        if not (last.strip().isdigit() and int(last) <= INT64_MAX):
            raise ApiError(400, "Last-Event-ID: must be a non-negative integer")
        after = int(last)
    frames = _timeline_frames(request, session_id, after)
    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(frames, media_type="text/event-stream", headers=headers)


async def _timeline_frames(request: Request, session_id: str, after: int) -> AsyncIterator[str]:
    followed = follow(
        _channel(request),
        services(request).dispatcher.live,
        session_id,
        after,
        gone=request.is_disconnected,
        lifetime_seconds=STREAM_SECONDS,
    )
    async for item in followed:
        if isinstance(item, Ended):
            end = {"sessionId": session_id, "status": item.status}
            yield f"event: end\ndata: {json.dumps(end)}\n\n"
        elif isinstance(item, Quiet):
            yield ": keepalive\n\n"
        else:
            data = TimelineEntry.of(item).model_dump_json()
            yield f"id: {item.id}\nevent: timeline\ndata: {data}\n\n"


@router.get("/sessions/{session_id}/recovery", response_model=RecoveryChain)
async def session_recovery(session_id: str, request: Request, who: SessionsRead) -> RecoveryChain:
    await visible_session(request, who, session_id)
    chain = await _channel(request).recovery_chain(session_id)
    return RecoveryChain(sessionId=session_id, packets=[packet_view(p) for p in chain])
