"""shopfloor's own operator API under /api/v1: create and inspect sessions, workers,
registration tokens and organisations. The admin key may do everything; an organisation's API
key or M2M access token acts in its organisation, on its projects, within its scopes."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from shopfloor.api.envelope import ApiError
from shopfloor.api.openapi import ADMIN_KEY, OAUTH2, ORG_API_KEY, af_errors, tag
from shopfloor.api.operator.auth import require_admin, scoped
from shopfloor.api.operator.schemas import (
    OrgCreate,
    OrgView,
    SessionCreate,
    SessionPage,
    SessionView,
    TokenCreate,
    TokenView,
    WorkerView,
)
from shopfloor.api.state import Services, services
from shopfloor.service.actors import Principal
from shopfloor.service.audit import principal_actor
from shopfloor.service.dispatch import NewSession, af_queue
from shopfloor.service.environments import Environments
from shopfloor.service.errors import SessionNotFound
from shopfloor.store.records import ALL_STATUSES, SessionFilter, SessionRecord
from shopfloor.store.tenancy_records import DEFAULT_ORG, REGISTRATION_KEY, ApiKeyRecord

# A session queued in an environment is also a work item `work_<hex>`.
_WORK_SESSION_ID = re.compile(r"^sess_[0-9a-f]{32}$")

OPERATOR_API = tag(
    "Operator API",
    "shopfloor's own API for the operator and the `shopfloor` CLI: queue and inspect sessions, "
    "list workers, mint and revoke registration tokens, manage organisations. The admin key may "
    "do everything; an organisation's API key or M2M access token acts in its organisation, on "
    "its projects, with its scopes (`sessions:read`, `sessions:write`, `workers:read`, "
    '`org_keys:write`, `*`). Errors are `{"error", "message"}`.',
    ADMIN_KEY,
    ORG_API_KEY,
    OAUTH2,
)
router = APIRouter(
    prefix="/api/v1",
    tags=[OPERATOR_API],
    responses=af_errors(400, 401, 403, 413),
)
SessionsRead = Annotated[Principal, Depends(scoped("sessions:read"))]
SessionsWrite = Annotated[Principal, Depends(scoped("sessions:write"))]
WorkersRead = Annotated[Principal, Depends(scoped("workers:read"))]
KeysWrite = Annotated[Principal, Depends(scoped("org_keys:write"))]


@router.post(
    "/sessions", status_code=201, response_model=SessionView, responses=af_errors(404, 409)
)
async def create_session(body: SessionCreate, request: Request, who: SessionsWrite) -> SessionView:
    if not (body.prompt or body.issueId or body.issueIdentifier):
        raise ApiError(400, "prompt: one of prompt, issueId or issueIdentifier is required")
    svc = services(request)
    dispatcher = svc.dispatcher
    org_id = await acting_org(svc, who, body.orgId)
    if not who.may_touch(org_id, body.projectName):
        raise ApiError(403, "projectName: this key may not queue work in that project")
    queue = af_queue(org_id)
    if body.environmentId is not None:
        if body.sessionId is not None and not _WORK_SESSION_ID.match(body.sessionId):
            raise ApiError(
                400, "sessionId: must be sess_ and 32 lowercase hex digits with environmentId"
            )
        environments = Environments(dispatcher.store, dispatcher.clock)
        queue = await environments.accepting_queue(body.environmentId, org_id)
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
            org_id=org_id,
            created_by=principal_actor(who.identity),
        )
    )
    return SessionView.of(session, await dispatcher.history(session.id))


async def acting_org(svc: Services, who: Principal, asked: str | None) -> str:
    """The organisation a call acts in: the caller's own, or for the admin key the one it
    names (by id or slug; the default one if it names none)."""
    if who.org_id is not None:
        if asked is not None and asked != who.org_id:
            org = await svc.orgs.get(asked)
            if org.id != who.org_id:
                raise ApiError(403, "orgId: this key acts in its own organisation only")
        return who.org_id
    return DEFAULT_ORG if asked is None else (await svc.orgs.get(asked)).id


@router.get("/sessions", response_model=SessionPage, responses=af_errors(404))
async def list_sessions(
    request: Request,
    who: SessionsRead,
    status: Annotated[str | None, Query(description="|".join(ALL_STATUSES))] = None,
    projectName: str | None = None,
    workType: str | None = None,
    workerId: str | None = None,
    issueId: str | None = None,
    orgId: Annotated[str | None, Query(description="The admin key: one organisation")] = None,
    before: Annotated[str | None, Query(description="Cursor from nextCursor")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SessionPage:
    if status is not None and status not in ALL_STATUSES:
        raise ApiError(400, "status: must be one of " + ", ".join(ALL_STATUSES))
    svc = services(request)
    org_id = who.org_id if orgId is None else await acting_org(svc, who, orgId)
    sessions = await svc.dispatcher.list_sessions(
        SessionFilter(
            status=status,
            project=projectName,
            work_type=workType,
            worker_id=workerId,
            issue_id=issueId,
            before_id=before,
            limit=limit,
            org_id=org_id,
            projects=who.projects,
        )
    )
    cursor = sessions[-1].id if len(sessions) == limit else None
    return SessionPage(sessions=[SessionView.of(s) for s in sessions], nextCursor=cursor)


@router.get("/sessions/{session_id}", response_model=SessionView, responses=af_errors(404))
async def get_session(session_id: str, request: Request, who: SessionsRead) -> SessionView:
    dispatcher = services(request).dispatcher
    session = await visible_session(request, who, session_id)
    return SessionView.of(session, await dispatcher.history(session_id))


async def visible_session(request: Request, who: Principal, session_id: str) -> SessionRecord:
    """The session, if the caller may see it; to anyone else it does not exist (404)."""
    session = await services(request).dispatcher.get_session(session_id)
    if not who.may_touch(session.org_id, session.project):
        raise SessionNotFound(session_id)
    return session


@router.get("/workers", response_model=list[WorkerView])
async def list_workers(
    request: Request, who: WorkersRead, status: str | None = None
) -> list[WorkerView]:
    workers = await services(request).dispatcher.store.list_workers(status, who.org_id)
    return [WorkerView.of(w) for w in workers]


# -- registration tokens: worker registration keys of an organisation --


@router.post(
    "/registration-tokens", status_code=201, response_model=TokenView, responses=af_errors(404)
)
async def create_token(body: TokenCreate, request: Request, who: KeysWrite) -> TokenView:
    svc = services(request)
    org_id = await acting_org(svc, who, body.org)
    if body.project is not None and not who.may_touch(org_id, body.project):
        raise ApiError(403, "project: this key may not mint tokens for that project")
    if body.project is None and who.projects is not None:
        raise ApiError(400, "project: a key limited to projects mints tokens for one of them")
    record, clear = await svc.credentials.mint_registration_token(body.project, org_id, body.label)
    return TokenView.of(record, clear)


@router.get("/registration-tokens", response_model=list[TokenView])
async def list_tokens(request: Request, who: KeysWrite) -> list[TokenView]:
    store = services(request).dispatcher.store
    records = await store.list_api_keys(who.org_id, REGISTRATION_KEY)
    return [TokenView.of(r) for r in records if _may_see_key(who, r)]


@router.delete(
    "/registration-tokens/{token_id}", response_model=TokenView, responses=af_errors(404)
)
async def revoke_token(token_id: str, request: Request, who: KeysWrite) -> TokenView:
    """Revoke the token, every runtime JWT and Veryfront worker token minted from it, and the
    workers registered with it (their sessions go back to the queue)."""
    svc = services(request)
    found = await svc.dispatcher.store.get_api_key(token_id)
    if found is None or found.key_type != REGISTRATION_KEY or not _may_see_key(who, found):
        raise ApiError(404, "Registration token not found")
    record = await svc.credentials.revoke_key(token_id)
    assert record is not None
    await svc.dispatcher.retire_registration(token_id)
    return TokenView.of(record)


def _may_see_key(who: Principal, key: ApiKeyRecord) -> bool:
    if who.org_id is not None and key.org_id != who.org_id:
        return False
    return who.projects is None or (key.projects is not None and set(key.projects) <= who.projects)


# -- organisations (the operator's own) --


@router.post(
    "/orgs",
    status_code=201,
    response_model=OrgView,
    responses=af_errors(409),
    dependencies=[Depends(require_admin)],
)
async def create_org(body: OrgCreate, request: Request) -> OrgView:
    return OrgView.of(await services(request).orgs.create(body.slug, body.name))


@router.get("/orgs", response_model=list[OrgView], dependencies=[Depends(require_admin)])
async def list_orgs(request: Request) -> list[OrgView]:
    return [OrgView.of(o) for o in await services(request).orgs.list()]
