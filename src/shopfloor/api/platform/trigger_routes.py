"""An organisation's webhook trigger rules: `POST`/`GET /api/org/{orgId}/webhook-triggers`,
`DELETE /api/org/{orgId}/webhook-triggers/{triggerId}` (an organisation-wide key with
`org_keys:write`; the admin key for any organisation)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from shopfloor.api.envelope import ApiError, json_object
from shopfloor.api.openapi import ADMIN_KEY, OAUTH2, ORG_API_KEY, af_errors, json_body, ok, security
from shopfloor.api.operator.auth import principal
from shopfloor.api.platform.integration_schemas import (
    TriggerCreate,
    TriggerDeleted,
    TriggerList,
    TriggerView,
    trigger_view,
)
from shopfloor.api.platform.webhook_routes import WEBHOOKS, managed_org
from shopfloor.api.state import services
from shopfloor.service.actors import Principal
from shopfloor.service.audit import principal_actor
from shopfloor.store.integration_records import TriggerRule

router = APIRouter(tags=[WEBHOOKS], responses=af_errors(400, 401, 403, 404, 413))
Caller = Annotated[Principal, Depends(principal)]
CREDENTIALS = security(ADMIN_KEY, ORG_API_KEY, OAUTH2)


@router.post(
    "/api/org/{org_id}/webhook-triggers",
    status_code=201,
    response_model=None,
    responses=ok(TriggerView, 201) | af_errors(409),
    openapi_extra=json_body(TriggerCreate) | CREDENTIALS,
)
async def create_trigger(org_id: str, request: Request, who: Caller) -> JSONResponse:
    """A rule: deliveries of `provider` with `eventType` whose body holds every `match` path
    queue a session with `prompt` rendered from the body."""
    svc = services(request)
    org = await managed_org(svc, who, org_id)
    rule = _rule(org, await json_object(request))
    made = await svc.webhooks.triggers.create(rule, principal_actor(who.identity))
    return JSONResponse(trigger_view(made), status_code=201)


@router.get(
    "/api/org/{org_id}/webhook-triggers",
    response_model=None,
    responses=ok(TriggerList),
    openapi_extra=CREDENTIALS,
)
async def list_triggers(org_id: str, request: Request, who: Caller) -> dict[str, Any]:
    svc = services(request)
    org = await managed_org(svc, who, org_id)
    return {"triggers": [trigger_view(r) for r in await svc.webhooks.triggers.list(org)]}


@router.delete(
    "/api/org/{org_id}/webhook-triggers/{trigger_id}",
    response_model=None,
    responses=ok(TriggerDeleted),
    openapi_extra=CREDENTIALS,
)
async def delete_trigger(
    org_id: str, trigger_id: str, request: Request, who: Caller
) -> dict[str, Any]:
    svc = services(request)
    org = await managed_org(svc, who, org_id)
    if not await svc.webhooks.triggers.delete(org, trigger_id, principal_actor(who.identity)):
        raise ApiError(404, "Trigger not found")
    return {"deleted": True, "id": trigger_id}


def _rule(org_id: str, body: dict[str, Any]) -> TriggerRule:
    provider, event_type, prompt = body.get("provider"), body.get("eventType"), body.get("prompt")
    for name, value in (("provider", provider), ("eventType", event_type), ("prompt", prompt)):
        if not isinstance(value, str) or not value:
            raise ApiError(400, f"{name} is required (a string)")
    match = body.get("match", {})
    if not isinstance(match, dict):
        raise ApiError(400, "match must be an object of dotted paths and values")
    priority = _bounded_int(body, "priority", 10)
    cooldown = _bounded_int(body, "cooldownSeconds", 30 * 86400)
    extras = {"workType": 64, "projectName": 200, "issue": 1000}
    for name, limit in extras.items():
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise ApiError(400, f"{name} must be a string of at most {limit} characters")
    return TriggerRule(
        id="",
        org_id=org_id,
        provider=str(provider),
        event_type=str(event_type),
        prompt_template=str(prompt),
        created_at=0,
        match=match,
        work_type=body.get("workType"),
        project=body.get("projectName"),
        priority=priority,
        issue_template=body.get("issue"),
        cooldown_seconds=cooldown,
    )


def _bounded_int(body: dict[str, Any], name: str, top: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
        raise ApiError(400, f"{name} must be an integer from 0 to {top}")
    return value
