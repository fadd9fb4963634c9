"""The fleet operations as REST routes under /api/mcp (rensei-platform.md §7.3), as the `af`
CLI calls them: an organisation's key (or an M2M access token, or the admin key) acts on its
own organisation's tasks in the projects it reaches, `sessions:write` to change and
`sessions:read` to read. Errors are `{"error", "message"}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from shopfloor.api.envelope import json_object
from shopfloor.api.mcp import fleet_schemas as schemas
from shopfloor.api.mcp.fleet_ops import OPS, FleetCall
from shopfloor.api.openapi import ADMIN_KEY, OAUTH2, ORG_API_KEY, af_errors, json_body, ok, tag
from shopfloor.api.operator.auth import scoped
from shopfloor.api.state import services
from shopfloor.service.actors import Principal
from shopfloor.service.fleet_ops import FleetOps, FleetScope
from shopfloor.store.tenancy_records import DEFAULT_ORG

FLEET = tag(
    "Rensei platform: fleet",
    "Queue, follow, prompt and stop tasks (sessions) of the caller's organisation, and total "
    "their cost: the `af` CLI's calls under /api/mcp, also served as MCP tools at "
    '/api/mcp/{sessionId}. Errors are `{"error", "message"}`.',
    ORG_API_KEY,
    OAUTH2,
    ADMIN_KEY,
)
router = APIRouter(prefix="/api/mcp", tags=[FLEET], responses=af_errors(400, 401, 403, 413))
Reader = Annotated[Principal, Depends(scoped("sessions:read"))]
Writer = Annotated[Principal, Depends(scoped("sessions:write"))]


async def _run(request: Request, who: Principal, op: str, args: dict[str, Any]) -> dict[str, Any]:
    call = FleetCall(
        fleet=FleetOps(services(request).dispatcher),
        scope=FleetScope(who.org_id, who.projects),
        org_id=who.org_id or DEFAULT_ORG,
        sender=who.identity,
        args=args,
    )
    return await OPS[op](call)


@router.post(
    "/submit-task",
    response_model=None,
    responses=ok(schemas.TaskSubmitted),
    openapi_extra=json_body(schemas.SubmitTask),
)
async def submit_task(request: Request, who: Writer) -> dict[str, Any]:
    """Queue a task on an issue for the organisation's workers."""
    return await _run(request, who, "submit-task", await json_object(request))


@router.post(
    "/stop-agent",
    response_model=None,
    responses=ok(schemas.TaskStopped) | af_errors(404, 409),
    openapi_extra=json_body(schemas.TaskRef),
)
async def stop_agent(request: Request, who: Writer) -> dict[str, Any]:
    """Stop a pending, claimed or running task."""
    return await _run(request, who, "stop-agent", await json_object(request))


@router.post(
    "/forward-prompt",
    response_model=None,
    responses=ok(schemas.PromptForwarded) | af_errors(404, 409),
    openapi_extra=json_body(schemas.ForwardPrompt),
)
async def forward_prompt(request: Request, who: Writer) -> dict[str, Any]:
    """Send a message to a running or claimed task's agent (delivered on its worker's poll)."""
    return await _run(request, who, "forward-prompt", await json_object(request))


@router.get(
    "/cost-report", response_model=None, responses=ok(schemas.FleetCostReport) | af_errors(404)
)
async def cost_report(request: Request, who: Reader, taskId: str | None = None) -> dict[str, Any]:
    """Cost and tokens of one task, or of the organisation's tasks the key reaches."""
    return await _run(request, who, "get-cost-report", {"taskId": taskId})


@router.get("/list-fleet", response_model=None, responses=ok(schemas.FleetList))
async def list_fleet(
    request: Request,
    who: Reader,
    status: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query()] = 20,
) -> dict[str, Any]:
    """The tasks the key reaches, newest first."""
    return await _run(request, who, "list-fleet", {"status": status, "limit": limit})
