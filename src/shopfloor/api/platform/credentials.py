"""An organisation's credential vault (shopfloor-defined paths: the reference keeps its
`/api/org/*` credential pages cookie-only and does not give them): set, list and delete the
secrets that daemons inject into agents' environments (`POST /api/daemon/credentials/snapshot`).
A value is write-only: no reply carries it. `credentials:write` (or `*`); a key limited to
projects manages only its projects' credentials. Errors are `{"error", "message"}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, StrictStr

from shopfloor.api.envelope import ApiError
from shopfloor.api.openapi import ADMIN_KEY, OAUTH2, ORG_API_KEY, af_errors, ok, tag
from shopfloor.api.operator.auth import scoped
from shopfloor.api.operator.schemas import RequestBody
from shopfloor.api.state import services
from shopfloor.api.timefmt import iso
from shopfloor.service.actors import Principal
from shopfloor.service.vault import Scope
from shopfloor.store.tenancy_records import ALL, CredentialRecord

CREDENTIALS = tag(
    "Rensei platform: credentials",
    "An organisation's credential vault: secrets stored encrypted (AES-256-GCM, with a key "
    "file outside the database), for the organisation or one project, every environment or "
    "one. Values are write-only here; daemons receive them in a snapshot. Needs "
    '`credentials:write`. Errors are `{"error", "message"}`.',
    ADMIN_KEY,
    ORG_API_KEY,
    OAUTH2,
)
router = APIRouter(tags=[CREDENTIALS], responses=af_errors(400, 401, 403, 404, 413))
Manager = Annotated[Principal, Depends(scoped("credentials:write"))]


class CredentialSet(RequestBody):
    name: StrictStr = Field(
        min_length=1, max_length=128, description="The environment variable, e.g. GITHUB_TOKEN"
    )
    value: StrictStr = Field(min_length=1, max_length=32 * 1024, description="Write-only")
    projectId: StrictStr | None = Field(None, min_length=1, max_length=100)
    envName: StrictStr | None = Field(
        None, min_length=1, max_length=100, description="e.g. production; absent: every one"
    )


class CredentialView(BaseModel):
    id: str
    orgId: str
    name: str
    projectId: str = Field(description='A project, or "all"')
    envName: str = Field(description='An environment, or "all"')
    createdAt: str
    updatedAt: str


class CredentialReply(BaseModel):
    credential: CredentialView


class CredentialList(BaseModel):
    credentials: list[CredentialView]


class CredentialDeleted(BaseModel):
    deleted: bool
    credentialId: str


def view(c: CredentialRecord) -> CredentialView:
    return CredentialView(
        id=c.id,
        orgId=c.org_id,
        name=c.name,
        projectId=c.project or "all",
        envName=c.env_name or "all",
        createdAt=iso(c.created_at) or "",
        updatedAt=iso(c.updated_at) or "",
    )


async def _org(request: Request, who: Principal, named: str) -> str:
    org = (await services(request).orgs.get(named)).id
    if who.org_id is not None and who.org_id != org:
        raise ApiError(403, "orgId: this key acts in its own organisation only")
    return org


def _may_manage(who: Principal, project: str) -> bool:
    return who.projects is None or (project != ALL and project in who.projects)


@router.post(
    "/api/org/{org_id}/credentials",
    response_model=None,
    responses=ok(CredentialReply),
)
async def set_credential(
    org_id: str, body: CredentialSet, request: Request, who: Manager
) -> CredentialReply:
    """Store a credential (replacing the value of the same name in the same scope); the
    daemons of the organisation subscribed to rotations get the new value at once."""
    org = await _org(request, who, org_id)
    scope = Scope(org, body.projectId or ALL, body.envName or ALL)
    if not _may_manage(who, scope.project):
        raise ApiError(403, "projectId: this key may not manage that project's credentials")
    stored = await services(request).vault.put(scope, body.name, body.value)
    return CredentialReply(credential=view(stored))


@router.get("/api/org/{org_id}/credentials", response_model=None, responses=ok(CredentialList))
async def list_credentials(
    org_id: str,
    request: Request,
    who: Manager,
    projectId: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> CredentialList:
    """The credentials (never their values), those of one project and the organisation's
    with `projectId`."""
    org = await _org(request, who, org_id)
    found = await services(request).dispatcher.store.list_credentials(org, projectId)
    return CredentialList(credentials=[view(c) for c in found if _may_manage(who, c.project)])


@router.delete(
    "/api/org/{org_id}/credentials/{credential_id}",
    response_model=None,
    responses=ok(CredentialDeleted),
)
async def delete_credential(
    org_id: str, credential_id: str, request: Request, who: Manager
) -> dict[str, Any]:
    org = await _org(request, who, org_id)
    svc = services(request)
    found = await svc.dispatcher.store.get_credential(credential_id)
    if found is None or found.org_id != org or not _may_manage(who, found.project):
        raise ApiError(404, "Credential not found")
    await svc.vault.delete(found)
    return {"deleted": True, "credentialId": credential_id}
