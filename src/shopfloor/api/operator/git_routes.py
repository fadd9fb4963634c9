"""The operator API's repositories, git credential sources and batch items (under /api/v1).

Credential sources hold secrets: only an organisation-wide key with `org_keys:write` (or the
admin key) manages them, and no answer ever carries the secret. Repositories are read with
`sessions:read` and managed with `org_keys:write`; batch items are queued with
`sessions:write` and read with `sessions:read`. Everything stays in the caller's
organisation: another organisation's ids are not found."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from shopfloor.api.envelope import ApiError
from shopfloor.api.openapi import af_errors
from shopfloor.api.operator.auth import scoped
from shopfloor.api.operator.git_schemas import (
    BatchItemCreate,
    BatchItemView,
    Deleted,
    GitSourceCreate,
    GitSourceView,
    RepositoryCreate,
    RepositoryView,
)
from shopfloor.api.operator.routes import OPERATOR_API, acting_org
from shopfloor.api.state import services
from shopfloor.service.actors import Principal
from shopfloor.service.audit import (
    GIT_SOURCE_CREATED,
    GIT_SOURCE_DELETED,
    REPOSITORY_CREATED,
    REPOSITORY_DELETED,
    Who,
    principal_actor,
)
from shopfloor.service.batch import NewBatchItem
from shopfloor.service.git_credentials import NewGitSource

router = APIRouter(prefix="/api/v1", tags=[OPERATOR_API], responses=af_errors(400, 401, 403, 413))
Read = Annotated[Principal, Depends(scoped("sessions:read"))]
Queue = Annotated[Principal, Depends(scoped("sessions:write"))]
Manage = Annotated[Principal, Depends(scoped("org_keys:write"))]
Limit = Annotated[int, Query(ge=1, le=500)]


def _actor(who: Principal) -> Who:
    return principal_actor(who.identity)


def _org_wide(who: Principal) -> None:
    if who.projects is not None:
        raise ApiError(403, "Only an organisation-wide key may manage credential sources")


# -- repositories --


@router.post(
    "/repositories", status_code=201, response_model=RepositoryView, responses=af_errors(404)
)
async def create_repository(
    body: RepositoryCreate, request: Request, who: Manage
) -> RepositoryView:
    svc = services(request)
    org_id = await acting_org(svc, who, body.orgId)
    if not who.may_touch(org_id, body.projectName):
        raise ApiError(403, "projectName: this key may not reach that project")
    repo = await svc.git.add_repository(org_id, body.url, body.projectName, body.sourceId)
    details = {"url": repo.url, "sourceId": repo.source_id}
    await svc.audit.record(
        org_id, REPOSITORY_CREATED, _actor(who), ("repository", repo.id), details
    )
    return RepositoryView.of(repo)


@router.get("/repositories", response_model=list[RepositoryView], responses=af_errors(404))
async def list_repositories(
    request: Request, who: Read, orgId: str | None = None
) -> list[RepositoryView]:
    svc = services(request)
    org_id = await acting_org(svc, who, orgId)
    repos = await svc.git.repositories(org_id)
    return [
        RepositoryView.of(r) for r in repos if who.may_touch(org_id, r.project) or r.project is None
    ]


@router.delete(
    "/repositories/{repository_id}",
    response_model=Deleted,
    responses=af_errors(404),
)
async def delete_repository(repository_id: str, request: Request, who: Manage) -> Deleted:
    git = services(request).git
    repo = await git.repository(who.org_id, repository_id)
    if not who.may_touch(repo.org_id, repo.project):
        raise ApiError(403, "This key may not reach that repository's project")
    await git.remove_repository(who.org_id, repository_id)
    entity = ("repository", repository_id)
    await services(request).audit.record(repo.org_id, REPOSITORY_DELETED, _actor(who), entity)
    return Deleted(id=repository_id, deleted=True)


# -- credential sources --


@router.post(
    "/git-credential-sources",
    status_code=201,
    response_model=GitSourceView,
    responses=af_errors(404),
)
async def create_source(body: GitSourceCreate, request: Request, who: Manage) -> GitSourceView:
    _org_wide(who)
    svc = services(request)
    org_id = await acting_org(svc, who, body.orgId)
    secret = body.token if body.kind == "static" else body.privateKey
    source = await svc.git.add_source(
        org_id,
        NewGitSource(
            kind=body.kind,
            name=body.name,
            secret=secret or "",
            org_default=body.orgDefault,
            app_id=body.appId,
            installation_id=body.installationId,
            expires_at=body.expiresAt,
        ),
    )
    details = {"kind": source.kind, "name": source.name, "orgDefault": source.org_default}
    entity = ("git_source", source.id)
    await svc.audit.record(org_id, GIT_SOURCE_CREATED, _actor(who), entity, details)
    return GitSourceView.of(source)


@router.get("/git-credential-sources", response_model=list[GitSourceView], responses=af_errors(404))
async def list_sources(
    request: Request, who: Manage, orgId: str | None = None
) -> list[GitSourceView]:
    _org_wide(who)
    svc = services(request)
    org_id = await acting_org(svc, who, orgId)
    return [GitSourceView.of(s) for s in await svc.git.sources(org_id)]


@router.delete(
    "/git-credential-sources/{source_id}",
    response_model=Deleted,
    responses=af_errors(404),
)
async def delete_source(source_id: str, request: Request, who: Manage) -> Deleted:
    _org_wide(who)
    svc = services(request)
    source = await svc.git.source(who.org_id, source_id)
    await svc.git.remove_source(who.org_id, source_id)
    entity = ("git_source", source_id)
    await svc.audit.record(source.org_id, GIT_SOURCE_DELETED, _actor(who), entity)
    return Deleted(id=source_id, deleted=True)


# -- batch items --


@router.post(
    "/batch-items", status_code=201, response_model=BatchItemView, responses=af_errors(404)
)
async def create_batch_item(body: BatchItemCreate, request: Request, who: Queue) -> BatchItemView:
    svc = services(request)
    org_id = await acting_org(svc, who, body.orgId)
    if not who.may_touch(org_id, body.projectName):
        raise ApiError(403, "projectName: this key may not queue work in that project")
    new = NewBatchItem(body.kind, body.capability, body.payload, body.projectName)
    return BatchItemView.of(await svc.batch.enqueue(org_id, new))


@router.get("/batch-items", response_model=list[BatchItemView])
async def list_batch_items(
    request: Request,
    who: Read,
    status: Annotated[str | None, Query(pattern="^(queued|leased|completed|failed)$")] = None,
    limit: Limit = 100,
) -> list[BatchItemView]:
    items = await services(request).batch.items(who.org_id, status, limit)
    return [BatchItemView.of(i) for i in items if _visible(who, i.org_id, i.project)]


@router.get("/batch-items/{item_id}", response_model=BatchItemView, responses=af_errors(404))
async def get_batch_item(item_id: str, request: Request, who: Read) -> BatchItemView:
    item = await services(request).batch.item(who.org_id, item_id)
    if not _visible(who, item.org_id, item.project):
        raise ApiError(404, f"Batch item {item_id} not found")
    return BatchItemView.of(item)


def _visible(who: Principal, org_id: str, project: str | None) -> bool:
    return who.may_touch(org_id, project) or (project is None and who.org_id in (None, org_id))
