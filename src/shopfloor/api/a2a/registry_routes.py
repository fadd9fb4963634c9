"""The registry of remote A2A agents (`/api/a2a/agents`, rensei-platform.md §4.2) and the list
of dispatches to them (`/api/a2a/dispatches`, §4.3): an organisation's key (M2M token, admin
key for the default organisation) on its own organisation's agents, `agents:write` to change
and `agents:read` to read. Registering fetches the card (400, nothing stored, if that fails).
Errors are `{"error", "message"}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from shopfloor.api.a2a import registry_schemas as schemas
from shopfloor.api.envelope import ApiError, json_object
from shopfloor.api.openapi import ADMIN_KEY, OAUTH2, ORG_API_KEY, af_errors, json_body, ok, tag
from shopfloor.api.operator.auth import scoped
from shopfloor.api.state import services
from shopfloor.api.timefmt import iso
from shopfloor.service.a2a_registry import DISPATCH_STATUSES
from shopfloor.service.actors import Principal
from shopfloor.store.a2a_records import A2aAgentRecord, A2aDispatchRecord, DispatchFilter
from shopfloor.store.tenancy_records import DEFAULT_ORG

REGISTRY = tag(
    "Rensei platform: A2A registry",
    "Remote A2A agents an organisation works with (registered by URL: their card is fetched), "
    "their trust level, and the dispatches made to them; each agent's skills are MCP tools "
    'of the organisation\'s sessions. Errors are `{"error", "message"}`.',
    ORG_API_KEY,
    OAUTH2,
    ADMIN_KEY,
)
router = APIRouter(prefix="/api/a2a", tags=[REGISTRY], responses=af_errors(400, 401, 403, 413))
Reader = Annotated[Principal, Depends(scoped("agents:read"))]
Writer = Annotated[Principal, Depends(scoped("agents:write"))]
MAX_DISPATCHES = 200
MAX_MS = 2**53  # a time the databases' BIGINT holds, and JSON numbers too


def _org(who: Principal) -> str:
    return who.org_id or DEFAULT_ORG


@router.get("/agents", response_model=None, responses=ok(schemas.A2aAgentList))
async def list_agents(request: Request, who: Reader) -> dict[str, Any]:
    agents = await services(request).a2a.list_agents(_org(who))
    return {"agents": [agent_view(a) for a in agents]}


@router.post(
    "/agents",
    response_model=None,
    responses=ok(schemas.A2aAgentReply) | af_errors(409),
    openapi_extra=json_body(schemas.A2aAgentRegister),
)
async def register_agent(request: Request, who: Writer) -> dict[str, Any]:
    """Fetch `<url>/.well-known/agent-card.json` (or `url` itself, if it is the card) and
    register the agent."""
    url = (await json_object(request)).get("url")
    if not isinstance(url, str):
        raise ApiError(400, "url: a URL is required")
    return {"agent": agent_view(await services(request).a2a.register(_org(who), url))}


@router.get(
    "/agents/{agent_id}", response_model=None, responses=ok(schemas.A2aAgentReply) | af_errors(404)
)
async def get_agent(agent_id: str, request: Request, who: Reader) -> dict[str, Any]:
    return {"agent": agent_view(await services(request).a2a.get(_org(who), agent_id))}


@router.patch(
    "/agents/{agent_id}",
    response_model=None,
    responses=ok(schemas.A2aAgentReply) | af_errors(404),
    openapi_extra=json_body(schemas.A2aAgentTrust),
)
async def set_trust(agent_id: str, request: Request, who: Writer) -> dict[str, Any]:
    level = (await json_object(request)).get("trustLevel")
    agent = await services(request).a2a.set_trust(_org(who), agent_id, level)
    return {"agent": agent_view(agent)}


@router.delete(
    "/agents/{agent_id}",
    response_model=None,
    responses=ok(schemas.A2aAgentDeleted) | af_errors(404),
)
async def delete_agent(agent_id: str, request: Request, who: Writer) -> dict[str, Any]:
    await services(request).a2a.delete(_org(who), agent_id)
    return {"deleted": True, "id": agent_id}


@router.post(
    "/agents/{agent_id}/refetch",
    response_model=None,
    responses=ok(schemas.A2aAgentReply) | af_errors(404),
)
async def refetch_agent(agent_id: str, request: Request, who: Writer) -> dict[str, Any]:
    """Fetch the card again; on failure the card is kept and `reachable` is false."""
    return {"agent": agent_view(await services(request).a2a.refetch(_org(who), agent_id))}


@router.get("/dispatches", response_model=None, responses=ok(schemas.A2aDispatchList))
async def list_dispatches(
    request: Request,
    who: Reader,
    agentId: str | None = None,
    status: str | None = None,
    from_: Annotated[int | None, Query(alias="from", description="Epoch ms")] = None,
    to: Annotated[int | None, Query(description="Epoch ms")] = None,
    limit: Annotated[int, Query()] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Dispatches of the organisation, newest first."""
    if status is not None and status not in DISPATCH_STATUSES:
        raise ApiError(400, "status: one of " + ", ".join(DISPATCH_STATUSES))
    if not 1 <= limit <= MAX_DISPATCHES:
        raise ApiError(400, f"limit: from 1 to {MAX_DISPATCHES}")
    for name, value in (("from", from_), ("to", to)):
        if value is not None and not 0 <= value <= MAX_MS:
            raise ApiError(400, f"{name}: epoch milliseconds from 0 to {MAX_MS}")
    found = await services(request).a2a.dispatches(
        DispatchFilter(_org(who), agentId, status, from_, to, cursor, limit)
    )
    return {
        "dispatches": [dispatch_view(d) for d in found],
        "nextCursor": found[-1].id if len(found) == limit else None,
    }


def agent_view(a: A2aAgentRecord) -> dict[str, Any]:
    return {
        "id": a.id,
        "orgId": a.org_id,
        "url": a.url,
        "trustLevel": a.trust_level,
        "card": a.card,
        "lastFetchedAt": iso(a.last_fetched_at),
        "reachable": a.reachable,
        "createdAt": iso(a.created_at),
        "updatedAt": iso(a.updated_at),
    }


def dispatch_view(d: A2aDispatchRecord) -> dict[str, Any]:
    return {
        "dispatchId": d.id,
        "agentId": d.agent_id,
        "agentName": d.agent_name,
        "skillId": d.skill_id,
        "taskId": d.task_id,
        "status": d.status,
        "dispatchType": d.dispatch_type,
        "sessionId": d.session_id,
        "input": {"text": d.input_text},
        "output": None if d.output_text is None else {"text": d.output_text},
        "dispatchedAt": iso(d.dispatched_at),
        "completedAt": iso(d.completed_at),
        "costTokens": None,
    }
