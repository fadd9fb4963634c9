"""Who may call the environment work API. The operator's admin key may do everything. A key
of an organisation works only that organisation's environments: an organisation-wide one
(`rsk_live_…`) the queues of all of them, a one-project one (`rsp_live_…`) only the
environment named as its project; keys limited to several projects are refused here.
Environments are managed with the admin key or an organisation key with the `*` scope."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.state import services


@dataclass(frozen=True)
class Caller:
    admin: bool
    environment: str | None = None  # a worker key limited to this environment
    org_id: str | None = None  # the key's organisation; None for the admin key
    manager: bool = False  # may manage its organisation's environments

    @property
    def scope_org(self) -> str | None:
        """The organisation this caller is limited to (None: every one)."""
        return None if self.admin else self.org_id


async def authenticate(request: Request, accept_x_api_key: bool) -> Caller:
    token = bearer(request)
    if token is None and accept_x_api_key:
        token = request.headers.get("x-api-key", "").strip() or None
    if token is None:
        raise ApiError(401, "Missing API key or token.")
    credentials = services(request).credentials
    if credentials.is_admin(token):
        return Caller(admin=True, manager=True)
    record = await credentials.registration_token(token)
    if record is None:
        raise ApiError(401, "Invalid API key or token.")
    if record.projects is not None and record.project is None:
        raise ApiError(403, "A key of several projects may not use the environment work API.")
    return Caller(
        admin=False,
        environment=record.project,
        org_id=record.org_id,
        manager=record.project is None and "*" in record.scopes,
    )


def require_admin(caller: Caller) -> None:
    if not caller.manager:
        raise ApiError(
            403,
            "Managing environments needs the operator's admin key or an organisation key "
            "with the * scope.",
        )


async def require_environment(request: Request, caller: Caller, environment_id: str) -> None:
    """The caller may use this environment: its key names it, or is organisation-wide and
    of the environment's organisation."""
    if caller.admin:
        return
    if caller.environment is not None and caller.environment != environment_id:
        raise ApiError(403, f"This key may not use environment {environment_id}.")
    org = await services(request).dispatcher.project_org(environment_id)
    if org is not None and org != caller.org_id:
        raise ApiError(403, f"This key may not use environment {environment_id}.")
