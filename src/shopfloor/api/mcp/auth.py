"""Who may use a session's MCP endpoint: the agent of the session, with the session's MCP
token (POST /api/sessions/{id}/mcp-token, minted for the worker holding it); the worker holding
the session's lease, with its runtime JWT; or a key of the session's organisation that reaches
its project (an `rsk_live_` user key, an M2M access token, or the operator's admin key).
Anyone else is refused: 401 without a usable credential, 403 for another organisation's or
project's credential, a worker that does not hold the session, or another session's token,
404 for no such session. The tokens stop working when their worker's lease ends."""

from __future__ import annotations

from fastapi import Request

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.operator.auth import principal
from shopfloor.api.state import services
from shopfloor.service.auth import (
    RuntimeClaims,
    SessionTokenClaims,
    TokenExpired,
    TokenRevoked,
)
from shopfloor.store.records import SessionRecord

UNAUTHORIZED = "Invalid or missing API key"
OTHER_TENANT = "This credential may not use sessions of that organisation or project"
NOT_HOLDER = "Only the worker holding the session may use its MCP endpoint"
OTHER_SESSION = "This token is for another session's MCP endpoint"


async def session_for_caller(request: Request, session_id: str) -> tuple[SessionRecord, str]:
    """The session, and who the caller is (a worker id, a key id or "admin")."""
    token = bearer(request)
    if token is None:
        raise ApiError(401, UNAUTHORIZED)
    runtime, scoped = _jwt_claims(request, token)
    if runtime is None and scoped is None:
        who = await principal(request)
        session = await _session(request, session_id)
        if not who.may_touch(session.org_id, session.project):
            raise ApiError(403, OTHER_TENANT)
        return session, who.identity
    session = await _session(request, session_id)
    if runtime is not None:
        if runtime.org_id != session.org_id or not _in_projects(runtime, session):
            raise ApiError(403, OTHER_TENANT)
        worker_id = runtime.worker_id
    else:
        assert scoped is not None
        if scoped.session_id != session.id or scoped.org_id != session.org_id:
            raise ApiError(403, OTHER_SESSION)
        worker_id = scoped.worker_id
    if session.worker_id != worker_id or not session.is_live:
        raise ApiError(403, NOT_HOLDER)
    return session, worker_id


async def _session(request: Request, session_id: str) -> SessionRecord:
    session = await services(request).dispatcher.store.get_session(session_id)
    if session is None:
        raise ApiError(404, "Session not found")
    return session


def _jwt_claims(
    request: Request, token: str
) -> tuple[RuntimeClaims | None, SessionTokenClaims | None]:
    """A runtime JWT's claims, or a session MCP token's (neither for any other credential)."""
    if token.count(".") != 2:
        return None, None
    creds = services(request).credentials
    try:
        runtime = creds.runtime_claims(token)
        if runtime is not None:
            return runtime, None
        return None, creds.session_token_claims(token)
    except TokenExpired:
        raise ApiError(401, "Token expired") from None
    except TokenRevoked:
        raise ApiError(401, "Token revoked") from None


def _in_projects(claims: RuntimeClaims, session: SessionRecord) -> bool:
    return claims.projects is None or session.project in claims.projects
