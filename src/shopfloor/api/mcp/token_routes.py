"""`POST /api/sessions/{sessionId}/mcp-token`: the worker holding a session gets a token for
the session's MCP endpoint to hand its agent (with the endpoint's URL), so that the agent
never holds the worker's own credential. The token reaches that one session's endpoint, and
only while this worker holds the session; it lives as long as a runtime JWT."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from shopfloor.api.agentfactory.auth import WorkerCaller, worker_caller
from shopfloor.api.agentfactory.schemas import SESSION_CHANNEL
from shopfloor.api.envelope import ApiError, json_object, opt_str
from shopfloor.api.openapi import af_errors, json_body, ok
from shopfloor.api.state import services

router = APIRouter(tags=[SESSION_CHANNEL], responses=af_errors(400, 401, 403, 404, 413))
Caller = Annotated[WorkerCaller, Depends(worker_caller)]


class McpTokenRequest(BaseModel):
    workerId: str | None = Field(
        None, description="The worker holding the session (a runtime JWT's by default)"
    )


class McpToken(BaseModel):
    url: str = Field(description="The session's MCP endpoint")
    token: str = Field(description="Bearer token for that endpoint only")
    expiresAt: int = Field(description="Epoch milliseconds")


@router.post(
    "/api/sessions/{session_id}/mcp-token",
    response_model=None,
    responses=ok(McpToken),
    openapi_extra=json_body(McpTokenRequest, required=False),
)
async def mcp_token(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request, empty_ok=True)
    worker_id = opt_str(body, "workerId") or (caller.runtime.worker_id if caller.runtime else None)
    if worker_id is None:
        raise ApiError(400, "workerId: required with the static worker key")
    await caller.check_acts_as(worker_id)
    svc = services(request)
    session = await svc.dispatcher.visible_session(session_id, caller.actor)
    if session.worker_id != worker_id or not session.is_live:
        raise ApiError(403, "Session is owned by another worker")
    registration = caller.runtime.registration_id if caller.runtime else None
    token, expires = svc.credentials.mint_session_token(
        session.id, worker_id, session.org_id, registration
    )
    url = str(request.base_url).rstrip("/") + f"/api/mcp/{session.id}"
    return {"url": url, "token": token, "expiresAt": expires}
