"""Who may use a session's MCP endpoint: the worker holding the session's lease (its runtime
JWT), or a key of the session's organisation that reaches its project (an `rsk_live_` user
key, an M2M access token, or the operator's admin key). Anyone else is refused: 401 without a
usable credential, 403 for another organisation's or project's credential or a worker that
does not hold the session, 404 for no such session."""

from __future__ import annotations

from fastapi import Request

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.operator.auth import principal
from shopfloor.api.state import services
from shopfloor.service.auth import RuntimeClaims, TokenExpired, TokenRevoked
from shopfloor.store.records import SessionRecord

UNAUTHORIZED = "Invalid or missing API key"
OTHER_TENANT = "This credential may not use sessions of that organisation or project"
NOT_HOLDER = "Only the worker holding the session may use its MCP endpoint"


async def session_for_caller(request: Request, session_id: str) -> tuple[SessionRecord, str]:
    """The session, and who the caller is (a worker id, a key id or "admin")."""
    token = bearer(request)
    if token is None:
        raise ApiError(401, UNAUTHORIZED)
    claims = _runtime_claims(request, token)
    if claims is None:
        who = await principal(request)
        session = await _session(request, session_id)
        if not who.may_touch(session.org_id, session.project):
            raise ApiError(403, OTHER_TENANT)
        return session, who.identity
    session = await _session(request, session_id)
    if claims.org_id != session.org_id or not _in_projects(claims, session):
        raise ApiError(403, OTHER_TENANT)
    if session.worker_id != claims.worker_id or not session.is_live:
        raise ApiError(403, NOT_HOLDER)
    return session, claims.worker_id


async def _session(request: Request, session_id: str) -> SessionRecord:
    session = await services(request).dispatcher.store.get_session(session_id)
    if session is None:
        raise ApiError(404, "Session not found")
    return session


def _runtime_claims(request: Request, token: str) -> RuntimeClaims | None:
    if token.count(".") != 2:
        return None
    try:
        return services(request).credentials.runtime_claims(token)
    except TokenExpired:
        raise ApiError(401, "Runtime token expired") from None
    except TokenRevoked:
        raise ApiError(401, "Runtime token revoked") from None


def _in_projects(claims: RuntimeClaims, session: SessionRecord) -> bool:
    return claims.projects is None or session.project in claims.projects
