"""Who may call the environment work API. The operator's admin key may do everything; a
registration token it minted is a narrower worker key: `rsk_live_…` works the queues of every
environment, `rsp_live_…` only the environment named as its project. Environments themselves
are managed with the admin key only."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.state import services


@dataclass(frozen=True)
class Caller:
    admin: bool
    environment: str | None = None  # a worker key limited to this environment


async def authenticate(request: Request, accept_x_api_key: bool) -> Caller:
    token = bearer(request)
    if token is None and accept_x_api_key:
        token = request.headers.get("x-api-key", "").strip() or None
    if token is None:
        raise ApiError(401, "Missing API key or token.")
    credentials = services(request).credentials
    if credentials.is_admin(token):
        return Caller(admin=True)
    record = await credentials.registration_token(token)
    if record is None:
        raise ApiError(401, "Invalid API key or token.")
    return Caller(admin=False, environment=record.project)


def require_admin(caller: Caller) -> None:
    if not caller.admin:
        raise ApiError(403, "Managing environments needs the operator's admin key.")


def require_environment(caller: Caller, environment_id: str) -> None:
    if caller.admin or caller.environment is None or caller.environment == environment_id:
        return
    raise ApiError(403, f"This key may not use environment {environment_id}.")
