"""Who calls the operator API: the admin key (every organisation), an organisation's API key
(`rsk_live_…` of the user kind: its organisation, its projects, its scopes), or an M2M
client's access token (its organisation, its scopes). Each route names the scope it needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.state import services
from shopfloor.service.actors import OPERATOR, Principal
from shopfloor.store.tenancy_records import USER_KEY

UNAUTHORIZED = "Invalid or missing admin API key"


async def principal(request: Request) -> Principal:
    token = bearer(request)
    if token is None:
        raise ApiError(401, UNAUTHORIZED)
    creds = services(request).credentials
    if creds.is_admin(token):
        return OPERATOR
    if token.count(".") == 2:
        found = creds.access_token_principal(token)
        if found is not None:
            return found
    key = await creds.api_key(token)
    if key is not None and key.key_type == USER_KEY:
        return Principal(
            org_id=key.org_id,
            projects=None if key.projects is None else frozenset(key.projects),
            scopes=frozenset(key.scopes),
            identity=key.id,
        )
    raise ApiError(401, UNAUTHORIZED)


def scoped(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller, if it may do `scope` (403 otherwise)."""

    async def check(request: Request) -> Principal:
        who = await principal(request)
        if not who.may(scope):
            raise ApiError(403, f"This key lacks the {scope} scope")
        return who

    return check


async def require_admin(request: Request) -> None:
    """The operator's own routes (organisations): the admin key only."""
    if not (await principal(request)).is_operator:
        raise ApiError(403, "Only the operator's admin key may do this")
