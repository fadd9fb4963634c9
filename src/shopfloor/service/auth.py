"""Credentials: the operator's admin key, the static worker key, registration tokens and the
runtime JWTs exchanged for them. Keys and tokens are stored as SHA-256 digests, never in
clear; the keys that sign runtime JWTs live in a file of their own (service/signing_keys.py)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from shopfloor.clock import Clock
from shopfloor.config import Settings
from shopfloor.ids import new_secret, new_token_id
from shopfloor.service.notifier import Notifier
from shopfloor.service.signing_keys import DIR_MODE, SigningKeys
from shopfloor.store import Store
from shopfloor.store.records import RegistrationTokenRecord

log = logging.getLogger("shopfloor.auth")

ADMIN_KEY_HASH = "admin_key_sha256"
# Where shopfloor before 0.2 kept the JWT secret; moved to the signing key file at start.
LEGACY_JWT_SECRET = "runtime_jwt_secret"
JWT_ISSUER = "shopfloor"
REGISTRATION_PREFIXES = ("rsk_live_", "rsp_live_")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())


@dataclass(frozen=True)
class RuntimeClaims:
    worker_id: str
    registration_id: str | None
    project: str | None
    org: str | None


class TokenExpired(Exception):
    pass


class TokenRevoked(Exception):
    """A runtime JWT minted from a registration token that has since been revoked."""


# The notifier topic on which a revocation reaches every server process.
REVOCATIONS = "shopfloor:revocations"


class Credentials:
    """Checks and mints every credential the server knows."""

    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._admin_hash: str | None = None
        self.signing_keys = SigningKeys(settings.signing_key_path)
        # Registration tokens revoked so far: what a runtime JWT's `reg` claim is checked
        # against on every call, without a database read (see watch_revocations).
        self._revoked: frozenset[str] = frozenset()
        self._refreshes: set[asyncio.Task[None]] = set()
        self._notifier: Notifier | None = None

    async def load(self) -> str | None:
        """Load or create the admin key digest and the JWT signing keys, and the revoked
        registration tokens. Returns a newly generated admin key in clear exactly once (to
        the process that created it), else None."""
        await self.refresh_revocations()
        await self._load_signing_keys()
        if self._settings.admin_api_key:
            self._admin_hash = digest(self._settings.admin_api_key)
            return None
        candidate = new_secret("sfa_")
        stored = await self._store.put_setting_if_absent(ADMIN_KEY_HASH, digest(candidate))
        self._admin_hash = stored
        if stored != digest(candidate):
            return None
        self._write_key_file(candidate)
        return candidate

    async def _load_signing_keys(self) -> None:
        """Read (or create) the key file. A secret an older shopfloor kept in the database
        seeds it, so the tokens it signed stay valid, and then leaves the database."""
        legacy = await self._store.get_setting(LEGACY_JWT_SECRET)
        self.signing_keys.load_or_create(self._clock.now_ms(), seed=legacy)
        if legacy is not None:
            await self._store.delete_setting(LEGACY_JWT_SECRET)

    async def upkeep(self) -> None:
        """Periodic: catch up on revocations whose notification was lost, and pick up a
        rotation of the signing keys."""
        await self.refresh_revocations()
        self.signing_keys.reload_if_changed()

    def _write_key_file(self, key: str) -> None:
        path = self._settings.admin_key_file
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")

    # -- operator --

    def is_admin(self, presented: str | None) -> bool:
        if not presented or self._admin_hash is None:
            return False
        return same_secret(digest(presented), self._admin_hash)

    # -- workers --

    def is_static_worker_key(self, presented: str | None) -> bool:
        expected = self._settings.worker_api_key
        if not presented or not expected:
            return False
        return same_secret(presented, expected)

    async def registration_token(self, presented: str) -> RegistrationTokenRecord | None:
        if not presented.startswith(REGISTRATION_PREFIXES):
            return None
        record = await self._store.find_registration_token(digest(presented))
        if record is None or record.revoked_at is not None:
            return None
        return record

    # -- revocation --

    def is_revoked(self, registration_id: str | None) -> bool:
        return registration_id is not None and registration_id in self._revoked

    async def refresh_revocations(self) -> None:
        self._revoked = frozenset(await self._store.revoked_registration_ids())

    def watch_revocations(self, notifier: Notifier) -> None:
        """Reload the revoked set whenever any server process revokes a token, and after a
        lost notification connection (when a revocation may have gone unheard)."""
        self._notifier = notifier
        notifier.listen(REVOCATIONS, self._on_revocation)

    def _on_revocation(self) -> None:
        task = asyncio.ensure_future(self.refresh_revocations())
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def revoke_registration_token(self, token_id: str) -> RegistrationTokenRecord | None:
        """Revoke a registration token and, at once and on every server process, every runtime
        JWT minted from it (each carries its token's id). None if there is no such token."""
        await self._store.revoke_registration_token(token_id, self._clock.now_ms())
        record = await self._store.get_registration_token(token_id)
        if record is None:
            return None
        await self.refresh_revocations()
        if self._notifier is not None:
            await self._notifier.publish(REVOCATIONS)
        return record

    async def mint_registration_token(
        self, project: str | None, org: str | None, label: str | None
    ) -> tuple[RegistrationTokenRecord, str]:
        kind = "rsp" if project else "rsk"
        clear = new_secret(f"{kind}_live_", 32)
        record = RegistrationTokenRecord(
            id=new_token_id(),
            kind=kind,
            token_hash=digest(clear),
            project=project,
            org=org,
            label=label,
            created_at=self._clock.now_ms(),
        )
        await self._store.insert_registration_token(record)
        return record, clear

    def mint_runtime_token(
        self, worker_id: str, registration: RegistrationTokenRecord
    ) -> tuple[str, int]:
        now_s = self._clock.now_ms() // 1000
        expires = now_s + self._settings.runtime_token_ttl_seconds
        claims: dict[str, Any] = {
            "iss": JWT_ISSUER,
            "jti": uuid.uuid4().hex,
            "sub": worker_id,
            "proj": registration.project,
            "org": registration.org,
            "reg": registration.id,
            "scope": ["worker:poll", "worker:heartbeat", "session:write"],
            "iat": now_s,
            "exp": expires,
        }
        key = self.signing_keys.current
        token = jwt.encode(claims, key.secret, algorithm="HS256", headers={"kid": key.kid})
        return token, expires * 1000

    def runtime_claims(self, token: str, *, allow_expired: bool = False) -> RuntimeClaims | None:
        """Verify a runtime JWT. Raises TokenExpired for an expired but otherwise valid token,
        TokenRevoked for one whose registration token was revoked."""
        claims = self._verified(token)
        if claims is None:
            return None
        if self.is_revoked(claims.get("reg")):
            raise TokenRevoked()
        if not allow_expired and int(claims["exp"]) * 1000 <= self._clock.now_ms():
            raise TokenExpired()
        return RuntimeClaims(
            worker_id=str(claims["sub"]),
            registration_id=claims.get("reg"),
            project=claims.get("proj"),
            org=claims.get("org"),
        )

    def _verified(self, token: str) -> dict[str, Any] | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return None
        for key in self.signing_keys.verifying(kid if isinstance(kid, str) else None):
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key.secret,
                    algorithms=["HS256"],
                    issuer=JWT_ISSUER,
                    options={"verify_exp": False, "require": ["sub", "exp", "jti"]},
                )
            except jwt.PyJWTError:
                continue
            return claims
        return None
