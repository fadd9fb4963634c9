"""Operator API for a session's channel: stop it, prompt it, nudge it, read its timeline,
its inbox and its crash-recovery chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, StrictStr

from shopfloor.api.envelope import INT64_MAX
from shopfloor.api.operator.routes import require_admin
from shopfloor.api.operator.schemas import RequestBody, SessionView
from shopfloor.api.state import services
from shopfloor.api.timefmt import iso
from shopfloor.service.channel import SessionChannel
from shopfloor.store.records import InboxMessage, RecoveryPacket, SessionEvent

# The identity of the admin key, recorded as the sender of what it sends.
OPERATOR = "admin"

router = APIRouter(
    prefix="/api/v1", tags=["Operator API: session channel"], dependencies=[Depends(require_admin)]
)


class Sender(RequestBody):
    """Who sends a message: as the caller reports it (a console user, the person behind an
    integration), else the credential's own identity."""

    userId: StrictStr | None = Field(None, min_length=1, max_length=200)
    userName: StrictStr | None = Field(None, max_length=200)

    def user_id(self) -> str:
        return self.userId or OPERATOR


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


@router.post("/sessions/{session_id}/stop", response_model=SessionView)
async def stop_session(
    session_id: str, request: Request, body: StopRequest | None = None
) -> SessionView:
    body = body or StopRequest(userId=None, userName=None, reason=None)
    svc = services(request)
    dispatcher = svc.dispatcher
    session = await dispatcher.channel.stop(
        session_id, body.reason, user_id=body.user_id(), user_name=body.userName
    )
    # A managed session ends with its row: its agent loop stops, its clients are told.
    await svc.managed.terminate(session_id)
    return SessionView.of(session, await dispatcher.history(session_id))


@router.post("/sessions/{session_id}/prompt", status_code=201, response_model=InboxMessageView)
async def prompt_session(
    session_id: str, body: PromptRequest, request: Request
) -> InboxMessageView:
    message = await _channel(request).send(
        session_id, "directive", body.text, user_id=body.user_id(), user_name=body.userName
    )
    return InboxMessageView.of(message)


@router.post("/sessions/{session_id}/nudge", status_code=201, response_model=InboxMessageView)
async def nudge_session(
    session_id: str, request: Request, body: NudgeRequest | None = None
) -> InboxMessageView:
    body = body or NudgeRequest(userId=None, userName=None, text=None)
    message = await _channel(request).send(
        session_id, "nudge", body.text or "", user_id=body.user_id(), user_name=body.userName
    )
    return InboxMessageView.of(message)


@router.get("/sessions/{session_id}/inbox", response_model=list[InboxMessageView])
async def session_inbox(session_id: str, request: Request) -> list[InboxMessageView]:
    channel = _channel(request)
    await channel.timeline(session_id, limit=1)  # 404 for an unknown session
    return [InboxMessageView.of(m) for m in await channel.store.list_inbox(session_id)]


@router.get("/sessions/{session_id}/activity", response_model=Timeline)
async def session_activity(
    session_id: str,
    request: Request,
    after: Annotated[
        int, Query(ge=0, le=INT64_MAX, description="Only entries with a larger id")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Timeline:
    session, events = await _channel(request).timeline(session_id, after, limit)
    return Timeline(
        sessionId=session.id,
        status=session.status,
        activities=[TimelineEntry.of(e) for e in events],
        nextCursor=events[-1].id or after if events else after,
    )


@router.get("/sessions/{session_id}/recovery", response_model=RecoveryChain)
async def session_recovery(session_id: str, request: Request) -> RecoveryChain:
    chain = await _channel(request).recovery_chain(session_id)
    return RecoveryChain(sessionId=session_id, packets=[packet_view(p) for p in chain])
