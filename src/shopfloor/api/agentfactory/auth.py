"""Who is calling a worker route: the static worker key, a registration token, or a runtime JWT."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.state import services
from shopfloor.service.actors import ANYONE, Actor
from shopfloor.service.auth import RuntimeClaims, TokenExpired, TokenRevoked
from shopfloor.store.records import RegistrationTokenRecord

UNAUTHORIZED = "Invalid or missing API key"
WRONG_SUBJECT = "Token subject does not match worker"


@dataclass(frozen=True)
class WorkerCaller:
    static_key: bool = False
    runtime: RuntimeClaims | None = None
    registration: RegistrationTokenRecord | None = None

    def check_acts_as(self, worker_id: str) -> None:
        """A runtime JWT may only act for the worker named in its `sub` claim."""
        if self.runtime is not None and self.runtime.worker_id != worker_id:
            raise ApiError(403, WRONG_SUBJECT)

    @property
    def actor(self) -> Actor:
        """The bounds of this credential: a runtime JWT acts for its worker, within its
        registration token's project; the static key is the whole fleet's."""
        if self.runtime is None:
            return ANYONE
        return Actor(
            worker_id=self.runtime.worker_id,
            project=self.runtime.project,
            registration_id=self.runtime.registration_id,
        )


async def authenticate(
    request: Request, *, allow_registration: bool = False, allow_expired: bool = False
) -> WorkerCaller:
    token = bearer(request)
    creds = services(request).credentials
    if token is None:
        raise ApiError(401, UNAUTHORIZED)
    if creds.is_static_worker_key(token):
        return WorkerCaller(static_key=True)
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
