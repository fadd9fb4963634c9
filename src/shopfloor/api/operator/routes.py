"""shopfloor's own operator API under /api/v1: create and inspect sessions, workers, tokens.
Every call needs the admin key as a Bearer token."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.operator.schemas import (
    SessionCreate,
    SessionPage,
    SessionView,
    TokenCreate,
    TokenView,
    WorkerView,
)
from shopfloor.api.state import services
from shopfloor.service.dispatch import AGENTFACTORY_QUEUE, NewSession
from shopfloor.service.environments import Environments
from shopfloor.store.records import ALL_STATUSES, SessionFilter


def require_admin(request: Request) -> None:
    if not services(request).credentials.is_admin(bearer(request)):
        raise ApiError(401, "Invalid or missing admin API key")


# A session queued in an environment is also a work item `work_<hex>`.
_WORK_SESSION_ID = re.compile(r"^sess_[0-9a-f]{32}$")

router = APIRouter(prefix="/api/v1", tags=["Operator API"], dependencies=[Depends(require_admin)])


@router.post("/sessions", status_code=201, response_model=SessionView)
async def create_session(body: SessionCreate, request: Request) -> SessionView:
    if not (body.prompt or body.issueId or body.issueIdentifier):
        raise ApiError(400, "prompt: one of prompt, issueId or issueIdentifier is required")
    dispatcher = services(request).dispatcher
    queue = AGENTFACTORY_QUEUE
    if body.environmentId is not None:
        if body.sessionId is not None and not _WORK_SESSION_ID.match(body.sessionId):
            raise ApiError(
                400, "sessionId: must be sess_ and 32 lowercase hex digits with environmentId"
            )
        environments = Environments(dispatcher.store, dispatcher.clock)
        queue = await environments.accepting_queue(body.environmentId)
    session = await dispatcher.create_session(
        NewSession(
            queue=queue,
            metadata=body.metadata,
            session_id=body.sessionId,
            issue_id=body.issueId,
            issue_identifier=body.issueIdentifier,
            title=body.title,
            description=body.description,
            prompt=body.prompt,
            work_type=body.workType,
            priority=body.priority,
            project=body.projectName,
            repository=body.repository,
            agent_id=body.agentId,
            labels=body.labels,
            extra=body.work_item_fields(),
            provider_session_id=body.providerSessionId,
        )
    )
    return SessionView.of(session, await dispatcher.history(session.id))


@router.get("/sessions", response_model=SessionPage)
async def list_sessions(
    request: Request,
    status: Annotated[str | None, Query(description="|".join(ALL_STATUSES))] = None,
    projectName: str | None = None,
    workType: str | None = None,
    workerId: str | None = None,
    issueId: str | None = None,
    before: Annotated[str | None, Query(description="Cursor from nextCursor")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SessionPage:
    if status is not None and status not in ALL_STATUSES:
        raise ApiError(400, "status: must be one of " + ", ".join(ALL_STATUSES))
    sessions = await services(request).dispatcher.list_sessions(
        SessionFilter(
            status=status,
            project=projectName,
            work_type=workType,
            worker_id=workerId,
            issue_id=issueId,
            before_id=before,
            limit=limit,
        )
    )
    cursor = sessions[-1].id if len(sessions) == limit else None
    return SessionPage(sessions=[SessionView.of(s) for s in sessions], nextCursor=cursor)


@router.get("/sessions/{session_id}", response_model=SessionView)
async def get_session(session_id: str, request: Request) -> SessionView:
    dispatcher = services(request).dispatcher
    session = await dispatcher.get_session(session_id)
    return SessionView.of(session, await dispatcher.history(session_id))


@router.get("/workers", response_model=list[WorkerView])
async def list_workers(request: Request, status: str | None = None) -> list[WorkerView]:
    workers = await services(request).dispatcher.store.list_workers(status)
    return [WorkerView.of(w) for w in workers]


@router.post("/registration-tokens", status_code=201, response_model=TokenView)
async def create_token(body: TokenCreate, request: Request) -> TokenView:
    record, clear = await services(request).credentials.mint_registration_token(
        body.project, body.org, body.label
    )
    return TokenView.of(record, clear)


@router.get("/registration-tokens", response_model=list[TokenView])
async def list_tokens(request: Request) -> list[TokenView]:
    records = await services(request).dispatcher.store.list_registration_tokens()
    return [TokenView.of(r) for r in records]


@router.delete("/registration-tokens/{token_id}", response_model=TokenView)
async def revoke_token(token_id: str, request: Request) -> TokenView:
    """Revoke the token, every runtime JWT and Veryfront worker token minted from it, and the
    workers registered with it (their sessions go back to the queue)."""
    svc = services(request)
    record = await svc.credentials.revoke_registration_token(token_id)
    if record is None:
        raise ApiError(404, "Registration token not found")
    await svc.dispatcher.retire_registration(token_id)
    return TokenView.of(record)
