"""A project's default work-item fields (under /api/v1/projects/{projectName}/defaults): the
agent a Go daemon runs (`resolvedProfile`, `modelProfile`) for the project's sessions that do
not choose their own. Read with `sessions:read`, set with `sessions:write`, by keys that reach
the project, in the caller's organisation (the admin key names one with `?orgId=`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from shopfloor.api.envelope import ApiError
from shopfloor.api.openapi import af_errors
from shopfloor.api.operator.auth import scoped
from shopfloor.api.operator.routes import OPERATOR_API, acting_org
from shopfloor.api.operator.schemas import ModelProfile, RequestBody, ResolvedProfile
from shopfloor.api.state import services
from shopfloor.api.timefmt import iso
from shopfloor.service.actors import Principal
from shopfloor.store.git_records import ProjectDefaultsRecord

router = APIRouter(prefix="/api/v1", tags=[OPERATOR_API], responses=af_errors(400, 401, 403, 413))
Read = Annotated[Principal, Depends(scoped("sessions:read"))]
Write = Annotated[Principal, Depends(scoped("sessions:write"))]
ProjectName = Annotated[str, Path(min_length=1, max_length=200)]


class ProjectDefaults(RequestBody):
    resolvedProfile: ResolvedProfile | None = None
    modelProfile: ModelProfile | None = None


class ProjectDefaultsView(BaseModel):
    orgId: str
    projectName: str
    resolvedProfile: dict[str, Any] | None
    modelProfile: dict[str, Any] | None
    updatedAt: str | None


async def _project(request: Request, who: Principal, project: str, org: str | None) -> str:
    org_id = await acting_org(services(request), who, org)
    if not who.may_touch(org_id, project):
        raise ApiError(403, "projectName: this key may not reach that project")
    return org_id


def _view(org_id: str, project: str, record: ProjectDefaultsRecord | None) -> ProjectDefaultsView:
    fields = record.fields if record else {}
    return ProjectDefaultsView(
        orgId=org_id,
        projectName=project,
        resolvedProfile=fields.get("resolvedProfile"),
        modelProfile=fields.get("modelProfile"),
        updatedAt=iso(record.updated_at) if record else None,
    )


@router.get(
    "/projects/{project}/defaults", response_model=ProjectDefaultsView, responses=af_errors(404)
)
async def get_defaults(
    project: ProjectName, request: Request, who: Read, orgId: str | None = None
) -> ProjectDefaultsView:
    org_id = await _project(request, who, project, orgId)
    dispatcher = services(request).dispatcher
    return _view(org_id, project, await dispatcher.project_defaults(org_id, project))


@router.put(
    "/projects/{project}/defaults", response_model=ProjectDefaultsView, responses=af_errors(404)
)
async def put_defaults(
    project: ProjectName,
    body: ProjectDefaults,
    request: Request,
    who: Write,
    orgId: str | None = None,
) -> ProjectDefaultsView:
    """Replace the project's defaults (fields left out are no longer defaulted)."""
    org_id = await _project(request, who, project, orgId)
    svc = services(request)
    record = ProjectDefaultsRecord(
        org_id, project, body.model_dump(exclude_none=True), svc.clock.now_ms()
    )
    await svc.dispatcher.set_project_defaults(record)
    return _view(org_id, project, record if record.fields else None)
