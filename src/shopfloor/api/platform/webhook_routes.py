"""Webhook intake (rensei-platform.md §5.1): `POST /api/webhooks/ingest/{provider}` for
linear, github, github-actions and vercel (and the legacy `POST /api/webhook/github`), and an
organisation's own webhook secrets (`PUT`/`DELETE /api/org/{orgId}/webhooks/{provider}`).

A delivery is answered at once, `{ok, eventId, correlationId}` (`duplicate: true` for a
delivery id seen before); a missing or wrong signature is 401 `{"error": "Invalid
signature"}`, no configured secret 503, as the AgentFactory receiver answers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from shopfloor.api.envelope import ApiError, json_object, parse_json_object
from shopfloor.api.limits import MIB, body_limit
from shopfloor.api.openapi import (
    ADMIN_KEY,
    OAUTH2,
    ORG_API_KEY,
    WEBHOOK_SIGNATURE,
    af_errors,
    json_body,
    ok,
    security,
    tag,
)
from shopfloor.api.operator.auth import principal
from shopfloor.api.platform.integration_schemas import (
    WebhookAccepted,
    WebhookPayload,
    WebhookSecretSet,
    WebhookSecretView,
)
from shopfloor.api.state import Services, services
from shopfloor.service.actors import Principal
from shopfloor.service.audit import principal_actor
from shopfloor.service.webhook_signatures import GITHUB, PROVIDERS
from shopfloor.service.webhooks import BadSignature, NotConfigured

# GitHub's own cap on a delivery is 25 MB; the deliveries that act here are far smaller.
WEBHOOK_MAX_BYTES = 10 * MIB

WEBHOOKS = tag(
    "Rensei platform: webhooks",
    "Deliveries from Linear, GitHub, GitHub Actions and Vercel, each signed with an HMAC of "
    "its raw body (the provider's own header), and an organisation's webhook secrets. "
    "`?org=<id or slug>` routes a delivery to an organisation's own secret; without it the "
    "server's configured secret (the default organisation) verifies it.",
    WEBHOOK_SIGNATURE,
    ADMIN_KEY,
    ORG_API_KEY,
    OAUTH2,
)
router = APIRouter(tags=[WEBHOOKS], responses=af_errors(400, 401, 413))
Caller = Annotated[Principal, Depends(principal)]
INGEST_DOC = json_body(WebhookPayload) | security(WEBHOOK_SIGNATURE)
INGEST_REPLIES = ok(WebhookAccepted) | af_errors(404, 503)


@router.post(
    "/api/webhooks/ingest/{provider}",
    response_model=None,
    responses=INGEST_REPLIES,
    openapi_extra=INGEST_DOC,
)
@body_limit(WEBHOOK_MAX_BYTES)
async def ingest(provider: str, request: Request, org: str | None = None) -> JSONResponse:
    """Verify, store and acknowledge a delivery; what it does happens after the answer. An
    unknown provider has no secret a signature could match: 401."""
    return await _ingest(request, provider, org)


@router.post(
    "/api/webhook/github",
    response_model=None,
    responses=INGEST_REPLIES,
    openapi_extra=INGEST_DOC | {"deprecated": True},
)
@body_limit(WEBHOOK_MAX_BYTES)
async def ingest_github_legacy(request: Request, org: str | None = None) -> JSONResponse:
    """The older path of GitHub deliveries, kept for apps configured with it."""
    return await _ingest(request, GITHUB, org)


async def _ingest(request: Request, provider: str, org: str | None) -> JSONResponse:
    webhooks = services(request).webhooks
    raw = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        org_id = await webhooks.verify(provider, org, raw, headers)
        accepted = await webhooks.accept(provider, org_id, parse_json_object(raw), raw, headers)
    except BadSignature as exc:
        return JSONResponse({"error": "Invalid signature", "message": exc.message}, 401)
    except NotConfigured as exc:
        body = {"error": "Service unavailable", "message": exc.message}
        return JSONResponse(body, 503)
    reply: dict[str, Any] = {
        "ok": True,
        "eventId": accepted.event_id,
        "correlationId": accepted.correlation_id,
    }
    if accepted.duplicate:
        reply["duplicate"] = True
    return JSONResponse(reply)


# -- an organisation's secrets --


@router.put(
    "/api/org/{org_id}/webhooks/{provider}",
    response_model=None,
    responses=ok(WebhookSecretView) | af_errors(403, 404),
    openapi_extra=json_body(WebhookSecretSet) | security(ADMIN_KEY, ORG_API_KEY, OAUTH2),
)
async def set_secret(org_id: str, provider: str, request: Request, who: Caller) -> dict[str, Any]:
    """Set the secret that verifies the organisation's deliveries from `provider` (stored
    encrypted; never shown again)."""
    svc = services(request)
    org = await _managed_org(svc, who, org_id, provider)
    secret = (await json_object(request)).get("secret")
    if not isinstance(secret, str):
        raise ApiError(400, "secret: a string of 16-512 characters is required")
    await svc.webhooks.set_secret(org, provider, secret, principal_actor(who.identity))
    return _view(provider, org, True)


@router.delete(
    "/api/org/{org_id}/webhooks/{provider}",
    response_model=None,
    responses=ok(WebhookSecretView) | af_errors(403, 404),
    openapi_extra=security(ADMIN_KEY, ORG_API_KEY, OAUTH2),
)
async def delete_secret(
    org_id: str, provider: str, request: Request, who: Caller
) -> dict[str, Any]:
    svc = services(request)
    org = await _managed_org(svc, who, org_id, provider)
    if not await svc.webhooks.delete_secret(org, provider, principal_actor(who.identity)):
        raise ApiError(404, "No webhook secret is set for this provider")
    return _view(provider, org, False)


async def _managed_org(svc: Services, who: Principal, named: str, provider: str) -> str:
    if provider not in PROVIDERS:
        raise ApiError(404, "provider: must be one of " + ", ".join(PROVIDERS))
    return await managed_org(svc, who, named)


async def managed_org(svc: Services, who: Principal, named: str) -> str:
    """The organisation `named`, if the caller may manage its integrations."""
    org = (await svc.orgs.get(named)).id
    if who.org_id is not None and who.org_id != org:
        raise ApiError(403, "orgId: this key acts in its own organisation only")
    if who.projects is not None or not who.may("org_keys:write"):
        raise ApiError(403, "Integrations need an organisation-wide key with org_keys:write")
    return org


def _view(provider: str, org_id: str, configured: bool) -> dict[str, Any]:
    url = f"/api/webhooks/ingest/{provider}?org={org_id}"
    return {"provider": provider, "configured": configured, "ingestUrl": url}
