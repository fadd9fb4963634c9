"""Who is calling a worker route: the static worker key, a registration token, or a runtime JWT."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.state import services
from shopfloor.service.actors import ANYONE, Actor
from shopfloor.service.auth import RuntimeClaims, TokenExpired, TokenRevoked
from shopfloor.service.dispatch import af_queue
from shopfloor.store.tenancy_records import DEFAULT_ORG, ApiKeyRecord

UNAUTHORIZED = "Invalid or missing API key"
WRONG_SUBJECT = "Token subject does not match worker"


@dataclass(frozen=True)
class WorkerCaller:
    static_key: bool = False
    runtime: RuntimeClaims | None = None
    registration: ApiKeyRecord | None = None
    # The organisation of a worker, for the static key's check (Dispatcher.worker_org).
    worker_org: Callable[[str], Awaitable[str | None]] | None = None

    async def check_acts_as(self, worker_id: str) -> None:
        """A runtime JWT may only act for the worker named in its `sub` claim; the static
        key for any worker of the default organisation, the one it belongs to."""
        if self.runtime is not None:
            if self.runtime.worker_id != worker_id:
                raise ApiError(403, WRONG_SUBJECT)
        elif self.worker_org is not None:
            org = await self.worker_org(worker_id)
            if org is not None and org != DEFAULT_ORG:
                raise ApiError(403, WRONG_SUBJECT)

    @property
    def actor(self) -> Actor:
        """The bounds of this credential: a runtime JWT acts for its worker, within its
        registration token's project; the static key is the whole fleet's."""
        if self.runtime is None:
            return ANYONE
        return Actor(
            worker_id=self.runtime.worker_id,
            org_id=self.runtime.org_id,
            projects=self.runtime.projects,
            registration_id=self.runtime.registration_id,
        )

    @property
    def queue(self) -> str:
        """The AgentFactory queue of the caller's organisation."""
        return af_queue(self.runtime.org_id if self.runtime else DEFAULT_ORG)


async def authenticate(
    request: Request, *, allow_registration: bool = False, allow_expired: bool = False
) -> WorkerCaller:
    token = bearer(request)
    creds = services(request).credentials
    if token is None:
        raise ApiError(401, UNAUTHORIZED)
    if creds.is_static_worker_key(token):
        return WorkerCaller(static_key=True, worker_org=services(request).dispatcher.worker_org)
    if token.count(".") == 2:
        try:
            claims = creds.runtime_claims(token, allow_expired=allow_expired)
        except TokenExpired:
            raise ApiError(401, "Runtime token expired") from None
        except TokenRevoked:
            raise ApiError(401, "Runtime token revoked") from None
        if claims is not None:
            return WorkerCaller(runtime=claims)
    if allow_registration:
        record = await creds.registration_token(token)
        if record is not None:
            return WorkerCaller(registration=record)
    raise ApiError(401, UNAUTHORIZED)


async def worker_caller(request: Request) -> WorkerCaller:
    """Dependency for the routes a registered worker calls."""
    return await authenticate(request)
