"""GET /api/cli/whoami: who the bearer credential is, for the Go client's `whoami` (used by
it, not in the reference index; the shape is shopfloor's, see schemas.WhoAmI). Any usable
key of the operator or public APIs may ask, with no scope."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.openapi import ADMIN_KEY, OAUTH2, ORG_API_KEY, ok, tag
from shopfloor.api.operator.auth import principal
from shopfloor.api.public import schemas
from shopfloor.api.public.errors import platform_errors
from shopfloor.api.state import services
from shopfloor.service.actors import Principal

CLI = tag(
    "Rensei CLI",
    "What the Go `af`/`rensei` client asks of the platform besides the public Sessions API. "
    'Errors are `{"error": "…"}`.',
    ADMIN_KEY,
    ORG_API_KEY,
    OAUTH2,
)
router = APIRouter(prefix="/api/cli", tags=[CLI], responses=platform_errors(400, 401, 413))


@router.get("/whoami", response_model=None, responses=ok(schemas.WhoAmI))
async def whoami(request: Request) -> schemas.WhoAmI:
    if bearer(request) is None:
        raise ApiError(401, "Unauthorized")
    try:
        who = await principal(request)
    except ApiError:
        raise ApiError(401, "Unauthorized") from None
    org = None if who.org_id is None else await services(request).orgs.get(who.org_id)
    return schemas.WhoAmI(
        kind=_kind(who),
        identity=who.identity,
        orgId=who.org_id,
        orgSlug=None if org is None else org.slug,
        projects="all" if who.projects is None else sorted(who.projects),
        scopes=sorted(who.scopes),
    )


def _kind(who: Principal) -> Literal["admin", "api_key", "m2m"]:
    if who.is_operator:
        return "admin"
    return "m2m" if who.identity.startswith("m2m_") else "api_key"
