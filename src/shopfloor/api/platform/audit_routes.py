"""The audit log (rensei-platform.md §6): `GET /api/audit` (offset pages, the reference's
shape), `GET /api/audit/events` (cursor pages, the prose shape), `POST /api/audit/verify`,
and each organisation's public keys at `/.well-known/audit-keys/{workspace_id}` (also with
`.json`). A key reads its own organisation's log only (an organisation-wide key with
`audit:read`); the admin key names the organisation it reads."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from shopfloor.api.envelope import ApiError, json_object
from shopfloor.api.openapi import ADMIN_KEY, OAUTH2, ORG_API_KEY, af_errors, json_body, ok, tag
from shopfloor.api.operator.auth import principal
from shopfloor.api.platform.integration_schemas import (
    AuditEventList,
    AuditJwks,
    AuditStreamPage,
    AuditVerdict,
    AuditVerifyRequest,
    audit_event,
    stream_event,
)
from shopfloor.api.state import Services, services
from shopfloor.service.actors import Principal
from shopfloor.store.integration_records import AuditQuery
from shopfloor.store.tenancy_records import DEFAULT_ORG

AUDIT = tag(
    "Rensei platform: audit",
    "The audit log: every security-relevant action of an organisation, in a SHA-256 hash "
    "chain, each entry signed with the organisation's Ed25519 key (public keys at "
    "/.well-known/audit-keys/{workspace_id}). An organisation-wide key with `audit:read` "
    "reads its own organisation's log only.",
    ADMIN_KEY,
    ORG_API_KEY,
    OAUTH2,
)
router = APIRouter(tags=[AUDIT], responses=af_errors(400, 401, 403, 413))
Caller = Annotated[Principal, Depends(principal)]
JWKS_CACHE = "public, max-age=300, stale-while-revalidate=3600"
MAX_OFFSET = 10**12


@router.get("/api/audit", response_model=None, responses=ok(AuditEventList) | af_errors(404))
async def list_audit(
    request: Request,
    who: Caller,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    entityId: Annotated[str | None, Query(max_length=200)] = None,
    entityType: Annotated[str | None, Query(max_length=64)] = None,
    workspaceId: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    svc = services(request)
    org = await _readable_org(svc, who, workspaceId)
    query = AuditQuery(org, limit, offset, entity_id=entityId, entity_type=entityType)
    return {"events": [audit_event(r) for r in await svc.audit.entries(query)]}


@router.get(
    "/api/audit/events", response_model=None, responses=ok(AuditStreamPage) | af_errors(404)
)
async def audit_events(
    request: Request,
    who: Caller,
    type: Annotated[str | None, Query(max_length=100)] = None,
    sessionId: Annotated[str | None, Query(max_length=200)] = None,
    orgId: Annotated[str | None, Query(max_length=200)] = None,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    svc = services(request)
    org = await _readable_org(svc, who, orgId)
    query = AuditQuery(
        org,
        limit,
        after_sequence=_cursor(cursor),
        event_type=type,
        session_id=sessionId,
        since=_moment("from", from_),
        until=_moment("to", to),
    )
    found = await svc.audit.entries(query)
    more = len(found) == limit
    return {
        "events": [stream_event(r) for r in found],
        "nextCursor": str(found[-1].sequence_number) if found and more else None,
    }


@router.post(
    "/api/audit/verify",
    response_model=None,
    responses=ok(AuditVerdict) | af_errors(404),
    openapi_extra=json_body(AuditVerifyRequest, required=False),
)
async def verify_audit(request: Request, who: Caller) -> dict[str, Any]:
    """Verify the organisation's chain as stored, against its published keys."""
    body = await json_object(request, empty_ok=True)
    named = body.get("workspaceId")
    if named is not None and not isinstance(named, str):
        raise ApiError(400, "workspaceId must be a string")
    svc = services(request)
    org = await _readable_org(svc, who, named)
    return (await svc.audit.verify(org)).as_dict()


@router.get(
    "/.well-known/audit-keys/{workspace_id}",
    response_model=None,
    responses={
        200: {
            "model": AuditJwks,
            "description": "The organisation's keys, active and revoked (none if unknown)",
            "content": {
                "application/jwk-set+json": {"schema": {"$ref": "#/components/schemas/AuditJwks"}}
            },
        },
        304: {"description": "Not modified (If-None-Match)"},
    },
    openapi_extra={"security": [{}]},
)
async def audit_keys(workspace_id: str, request: Request) -> Response:
    """Public: the JWKS that verifies the organisation's audit log (`{workspace_id}.json`
    too). An unknown workspace has no keys, so the answer tells no one which exist."""
    svc = services(request)
    named = workspace_id.removesuffix(".json")
    org = await svc.dispatcher.store.get_org(named)
    jwks = svc.audit.jwks(org.id) if org is not None else {"keys": []}
    text = json.dumps(jwks, separators=(",", ":"))
    etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
    headers = {
        "Cache-Control": JWKS_CACHE,
        "ETag": etag,
        "Access-Control-Allow-Origin": "*",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(text, media_type="application/jwk-set+json", headers=headers)


async def _readable_org(svc: Services, who: Principal, named: str | None) -> str:
    """The organisation whose log the caller reads: its own (naming another is refused),
    or the one the admin key names (the default organisation if none)."""
    if who.org_id is None:
        return DEFAULT_ORG if named is None else (await svc.orgs.get(named)).id
    if named is not None and named != who.org_id:
        org = await svc.dispatcher.store.get_org(named)
        if org is None or org.id != who.org_id:
            raise ApiError(403, "orgId: this key reads its own organisation's audit log only")
    if who.projects is not None or not who.may("audit:read"):
        raise ApiError(403, "Reading the audit log needs an organisation-wide key with audit:read")
    return who.org_id


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise ApiError(400, "cursor: not a cursor this server issued")
    return int(cursor)


def _moment(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name}: an ISO 8601 date-time is required") from None
    if moment.tzinfo is None:
        raise ApiError(400, f"{name}: the date-time needs a time zone (Z or an offset)")
    return int(moment.timestamp() * 1000)
