"""The Rensei platform's authentication routes (rensei-platform.md §3): an organisation's API
keys (`/api/org/{orgId}/keys`, and the deprecated `/api/org/api-keys`), M2M clients
(`/api/admin/m2m-clients`) and the OAuth 2.0 client_credentials token endpoint
(`/api/oauth/token`, in oauth.py). Errors are `{"error", "message"}`, as the operator API's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from shopfloor.api.envelope import ApiError, json_object
from shopfloor.api.openapi import ADMIN_KEY, OAUTH2, ORG_API_KEY, af_errors, json_body, ok, tag
from shopfloor.api.operator.auth import principal
from shopfloor.api.platform import schemas
from shopfloor.api.state import Services, services
from shopfloor.service.actors import Principal
from shopfloor.service.audit import principal_actor
from shopfloor.service.keys import key_scopes, m2m_scopes
from shopfloor.store.tenancy_records import REGISTRATION_KEY, USER_KEY, ApiKeyRecord

PLATFORM_AUTH = tag(
    "Rensei platform: authentication",
    "An organisation's API keys (`rsk_live_…`, shown once, stored as a digest), M2M clients "
    "and their client_credentials access tokens. A key acts in its own organisation only: "
    "`{orgId}` must be its organisation (the admin key may name any). Errors are "
    '`{"error", "message"}`.',
    ADMIN_KEY,
    ORG_API_KEY,
    OAUTH2,
)
router = APIRouter(tags=[PLATFORM_AUTH], responses=af_errors(400, 401, 403, 413))
Caller = Annotated[Principal, Depends(principal)]


# -- API keys --


@router.post(
    "/api/org/{org_id}/keys",
    response_model=None,
    responses=ok(schemas.KeyMinted) | af_errors(404),
    openapi_extra=json_body(schemas.KeyCreate),
)
async def mint_key(org_id: str, request: Request, who: Caller) -> dict[str, Any]:
    """Mint a key of the organisation; its secret (`fullKey`) is in this reply only."""
    org = await _org_of(services(request), who, org_id)
    return await _mint(request, who, org, await json_object(request))


@router.post(
    "/api/org/api-keys",
    response_model=None,
    responses=ok(schemas.KeyMinted),
    openapi_extra=json_body(schemas.KeyCreate) | {"deprecated": True},
)
async def mint_key_deprecated(request: Request, who: Caller) -> JSONResponse:
    """The older path: a key of the caller's own organisation (answers `Deprecation: true`)."""
    if who.org_id is None:
        raise ApiError(400, "orgId: the admin key mints through /api/org/{orgId}/keys")
    minted = await _mint(request, who, who.org_id, await json_object(request))
    return JSONResponse(minted, headers={"Deprecation": "true"})


async def _mint(
    request: Request, who: Principal, org_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    wanted = schemas.key_request(body)
    key_type = REGISTRATION_KEY if body.get("keyType") == "worker_registration" else USER_KEY
    scopes = key_scopes(who, wanted)
    record, secret = await services(request).credentials.mint_key(
        org_id=org_id,
        key_type=key_type,
        name=wanted.name,
        projects=wanted.projects,
        scopes=scopes,
        expires_at=wanted.expires_at,
        by=principal_actor(who.identity),
    )
    view = schemas.key_view(record)
    # The reference's shape, and the older prose shape's names beside it.
    return {
        "key": {**view, "fullKey": secret},
        "keyId": record.id,
        "token": secret,
        "name": record.name,
        "keyType": record.key_type,
        "scopes": record.scopes,
        "createdAt": view["createdAt"],
    }


@router.get(
    "/api/org/{org_id}/keys",
    response_model=None,
    responses=ok(schemas.KeyList) | af_errors(404),
)
async def list_keys(org_id: str, request: Request, who: Caller) -> dict[str, Any]:
    svc = services(request)
    org = await _org_of(svc, who, org_id)
    if not who.may("org_keys:write"):
        raise ApiError(403, "Listing keys needs the org_keys:write scope")
    keys = await svc.dispatcher.store.list_api_keys(org)
    return {"keys": [schemas.key_view(k) for k in keys if _within(who, k)]}


@router.delete(
    "/api/org/{org_id}/keys/{key_id}",
    response_model=None,
    responses=ok(schemas.KeyRevoked) | af_errors(404),
)
async def revoke_key(org_id: str, key_id: str, request: Request, who: Caller) -> dict[str, Any]:
    """Revoke a key at once on every server process, with every runtime JWT minted from it;
    a worker registration key's workers are dead and their sessions go back to the queue."""
    svc = services(request)
    org = await _org_of(svc, who, org_id)
    if not who.may("org_keys:write"):
        raise ApiError(403, "Revoking keys needs the org_keys:write scope")
    key = await svc.dispatcher.store.get_api_key(key_id)
    if key is None or key.org_id != org or not _within(who, key):
        raise ApiError(404, "Key not found")
    await svc.credentials.revoke_key(key_id, principal_actor(who.identity))
    await svc.dispatcher.retire_registration(key_id)
    return {"revoked": True, "keyId": key_id}


def _within(who: Principal, key: ApiKeyRecord) -> bool:
    """A key limited to projects sees only keys of those projects."""
    if who.projects is None:
        return True
    return key.projects is not None and set(key.projects) <= who.projects


async def _org_of(svc: Services, who: Principal, named: str) -> str:
    """The organisation `{orgId}` names (id or slug), if the caller acts in it."""
    org = (await svc.orgs.get(named)).id
    if who.org_id is not None and who.org_id != org:
        raise ApiError(403, "orgId: this key acts in its own organisation only")
    return org


# -- M2M clients --


@router.post(
    "/api/admin/m2m-clients",
    status_code=201,
    response_model=None,
    responses=ok(schemas.M2MClientMinted, 201) | af_errors(404),
    openapi_extra=json_body(schemas.M2MClientCreate),
)
async def create_m2m_client(request: Request, who: Caller) -> JSONResponse:
    """A client of the caller's organisation (the admin key names one with `orgId`); its
    secret is in this reply only."""
    body = await json_object(request)
    name, scopes, named_org = schemas.m2m_request(body)
    svc = services(request)
    org = await _org_of(svc, who, named_org or who.org_id or "default")
    client, secret = await svc.credentials.mint_m2m_client(
        org, name, m2m_scopes(who, scopes), principal_actor(who.identity)
    )
    view = schemas.m2m_view(client)
    return JSONResponse({"client": {**view, "clientSecret": secret}}, status_code=201)


@router.get(
    "/api/admin/m2m-clients",
    response_model=None,
    responses=ok(schemas.M2MClientList) | af_errors(404),
)
async def list_m2m_clients(
    request: Request,
    who: Caller,
    orgId: str | None = None,
) -> dict[str, Any]:
    """The caller's organisation's clients (the admin key: every organisation's, or the one
    `orgId` names)."""
    if not who.may("org_keys:write"):
        raise ApiError(403, "Listing M2M clients needs the org_keys:write scope")
    svc = services(request)
    org = who.org_id if orgId is None else await _org_of(svc, who, orgId)
    clients = await svc.dispatcher.store.list_m2m_clients(org)
    return {"clients": [schemas.m2m_view(c) for c in clients]}


@router.delete(
    "/api/admin/m2m-clients/{client_id}",
    response_model=None,
    responses=ok(schemas.M2MClientRevoked) | af_errors(404),
)
async def revoke_m2m_client(client_id: str, request: Request, who: Caller) -> dict[str, Any]:
    """Revoke a client and, at once, every access token issued to it."""
    svc = services(request)
    client = await svc.dispatcher.store.get_m2m_client(client_id)
    if client is None or (who.org_id is not None and client.org_id != who.org_id):
        raise ApiError(404, "M2M client not found")
    if not who.may("org_keys:write"):
        raise ApiError(403, "Revoking M2M clients needs the org_keys:write scope")
    await svc.credentials.revoke_m2m_client(client_id, principal_actor(who.identity))
    return {"revoked": True, "clientId": client_id}
