"""Interview token-delta frames, the runner's side (rensei-platform.md §1.5): `POST
/api/sessions/{id}/token-delta` `{turnId, frames}` with the session's worker credential,
answered `{published: <frames>}`. Watchers read them from
`GET /api/public/sessions/{id}/token-stream`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StrictStr

from shopfloor.api.agentfactory import schemas
from shopfloor.api.agentfactory.auth import WorkerCaller, worker_caller
from shopfloor.api.envelope import ApiError
from shopfloor.api.openapi import af_errors, ok
from shopfloor.api.operator.schemas import RequestBody
from shopfloor.api.state import services
from shopfloor.service.token_deltas import TokenDeltas

router = APIRouter(tags=[schemas.SESSION_CHANNEL], responses=af_errors(400, 401, 403, 404, 413))
Caller = Annotated[WorkerCaller, Depends(worker_caller)]


class TokenDelta(RequestBody):
    turnId: StrictStr = Field(min_length=1, max_length=200)
    frames: list[dict[str, Any]] = Field(
        max_length=1000, description="Token frames, passed through as they are"
    )


class Published(BaseModel):
    published: int


@router.post("/api/sessions/{session_id}/token-delta", response_model=None, responses=ok(Published))
async def token_delta(
    session_id: str, body: TokenDelta, request: Request, caller: Caller
) -> Published:
    svc = services(request)
    session = await svc.dispatcher.visible_session(session_id, caller.actor)
    worker_id = caller.runtime.worker_id if caller.runtime else None
    if worker_id is not None and session.worker_id != worker_id:
        raise ApiError(403, "Session is owned by another worker")
    deltas = TokenDeltas(svc.dispatcher.store, svc.clock, svc.dispatcher.notifier)
    return Published(published=await deltas.publish(session, worker_id, body.turnId, body.frames))
