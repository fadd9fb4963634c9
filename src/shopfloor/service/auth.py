"""Credentials: the operator's admin key, the static worker key, API keys (user keys and
worker registration tokens), the runtime JWTs workers exchange registration tokens for, and
OAuth 2.0 client_credentials clients with the access tokens they are issued. Keys and secrets
are stored as SHA-256 digests, never in clear; the keys that sign JWTs live in a file of
their own (service/signing_keys.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import os
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from shopfloor.clock import Clock
from shopfloor.config import Settings
from shopfloor.ids import new_secret, new_token_id
from shopfloor.service.actors import Principal
from shopfloor.service.audit import (
    KEY_MINTED,
    KEY_REVOKED,
    M2M_CLIENT_CREATED,
    M2M_CLIENT_REVOKED,
    SYSTEM,
    AuditLog,
    Who,
)
from shopfloor.service.notifier import Notifier
from shopfloor.service.private_files import DIR_MODE
from shopfloor.service.signing_keys import SigningKeys
from shopfloor.store import Store
from shopfloor.store.tenancy_records import (
    DEFAULT_ORG,
    REGISTRATION_KEY,
    ApiKeyRecord,
    M2MClientRecord,
)

log = logging.getLogger("shopfloor.auth")

ADMIN_KEY_HASH = "admin_key_sha256"
# Where shopfloor before 0.2 kept the JWT secret; moved to the signing key file at start.
LEGACY_JWT_SECRET = "runtime_jwt_secret"
JWT_ISSUER = "shopfloor"
# A session's MCP token: what the worker holding a session hands its agent (api/mcp).
SESSION_TOKEN_ISSUER = "shopfloor-mcp"
KEY_PREFIXES = ("rsk_live_", "rsp_live_")
# Access tokens of M2M clients, as the Rensei platform issues them.
ACCESS_TOKEN_ISSUER = "rensei-platform"
ACCESS_TOKEN_AUDIENCE = "rensei-api"
ACCESS_TOKEN_TTL_SECONDS = 3600
# What a worker registration token may do (and a runtime JWT minted from it).
WORKER_SCOPES = ("worker:register", "worker:poll", "worker:heartbeat", "worker:session")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())


@dataclass(frozen=True)
class SessionTokenClaims:
    """A session's MCP token: it may use that session's MCP endpoint, while the worker it was
    minted for holds the session, and nothing else."""

    session_id: str
    worker_id: str
    org_id: str


@dataclass(frozen=True)
class RuntimeClaims:
    worker_id: str
    registration_id: str | None
    projects: frozenset[str] | None  # None: every project of the org
    org_id: str


class InvalidClient(Exception):
    """client_credentials that name no usable client, or the wrong secret."""


class InvalidScope(Exception):
    """An access token asked for a scope its client does not have."""


class TokenExpired(Exception):
    pass


class TokenRevoked(Exception):
    """A token minted from a key or client that has since been revoked."""


# The notifier topic on which a revocation reaches every server process.
REVOCATIONS = "shopfloor:revocations"


# How long a key read from the database answers for it without another read. A revoked key
# is refused on its next request regardless: every use checks the revoked set, which the
# revoking process updates before the revocation returns and every other server process
# reloads when the revocation's notification reaches it (and after a lost notification
# connection, and on every upkeep). Should that notification be lost, the key is still
# refused once this has passed, when it is read again.
KEY_CACHE_MS = 5_000
KEY_CACHE_MAX = 10_000


class KeyCache:
    """API keys by the digest of their secret, as read at a time. Only keys found are kept
    (a wrong secret reads the database every time); a key's record changes only when it is
    revoked, which the revoked set answers for at once (Credentials.api_key)."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[ApiKeyRecord, int]] = {}

    def get(self, hashed: str, now: int) -> ApiKeyRecord | None:
        found = self._keys.get(hashed)
        if found is None:
            return None
        record, read_at = found
        if not 0 <= now - read_at < KEY_CACHE_MS:
            del self._keys[hashed]
            return None
        return record

    def put(self, hashed: str, record: ApiKeyRecord, now: int) -> None:
        if hashed not in self._keys and len(self._keys) >= KEY_CACHE_MAX:
            self._keys.clear()
        self._keys[hashed] = (record, now)

    def drop(self, hashed: str) -> None:
        self._keys.pop(hashed, None)


class Credentials:
    """Checks and mints every credential the server knows."""

    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._admin_hash: str | None = None
        self.signing_keys = SigningKeys(settings.signing_key_path)
        # Keys and M2M clients revoked so far: what a JWT's key or client is checked against
        # on every call, without a database read (see watch_revocations).
        self._revoked: frozenset[str] = frozenset()
        self._refreshes: set[asyncio.Task[None]] = set()
        self._notifier: Notifier | None = None
        self._keys = KeyCache()
        self.audit: AuditLog | None = None  # set by the app: where keys minted and revoked go

    async def load(self) -> str | None:
        """Load or create the admin key digest and the JWT signing keys, and the revoked
        keys and clients. Returns a newly generated admin key in clear exactly once (to
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

    def admin_binding(self) -> str | None:
        """A fingerprint of the current admin key (not the key, not its stored digest): a
        console login made with it ends when the admin key changes."""
        if self._admin_hash is None:
            return None
        return digest("console-login:" + self._admin_hash)[:32]

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

    # -- API keys: user keys and worker registration tokens --

    async def api_key(self, presented: str) -> ApiKeyRecord | None:
        """The usable (not revoked, not expired) key a secret is, if any. A key found is
        remembered for KEY_CACHE_MS by its digest (see KeyCache), so that a fleet polling
        with it does not read the database on every request."""
        if not presented.startswith(KEY_PREFIXES):
            return None
        hashed = digest(presented)
        now = self._clock.now_ms()
        record = self._keys.get(hashed, now)
        if record is None:
            record = await self._store.find_api_key(hashed)
            if record is not None:
                self._keys.put(hashed, record, now)
        if record is None or self.is_revoked(record.id) or not record.usable_at(now):
            return None
        return record

    async def registration_token(self, presented: str) -> ApiKeyRecord | None:
        """A usable key that may register workers and work their queues."""
        record = await self.api_key(presented)
        if record is None or not _grants(record.scopes, "worker:register"):
            return None
        return record

    async def mint_key(
        self,
        *,
        org_id: str,
        key_type: str,
        name: str | None,
        projects: list[str] | None,
        scopes: list[str],
        expires_at: int | None = None,
        by: Who = SYSTEM,
    ) -> tuple[ApiKeyRecord, str]:
        """A new key; its secret is returned once, in clear, and stored only as a digest. A
        worker registration token limited to one project is an `rsp_live_` key."""
        one_project = key_type == REGISTRATION_KEY and projects is not None and len(projects) == 1
        kind = "rsp" if one_project else "rsk"
        clear = f"{kind}_live_{secrets.token_hex(32)}"
        record = ApiKeyRecord(
            id=new_token_id(),
            org_id=org_id,
            key_type=key_type,
            token_hash=digest(clear),
            key_prefix=clear[:13],
            created_at=self._clock.now_ms(),
            name=name,
            projects=projects,
            scopes=scopes,
            expires_at=expires_at,
        )
        await self._store.insert_api_key(record)
        details = {"keyType": key_type, "keyPrefix": record.key_prefix, "scopes": scopes}
        await self._record(org_id, KEY_MINTED, by, ("api_key", record.id), details)
        return record, clear

    async def _record(
        self, org_id: str, event: str, by: Who, entity: tuple[str, str], details: dict[str, Any]
    ) -> None:
        if self.audit is not None:
            await self.audit.record(org_id, event, by, entity, details)

    async def mint_registration_token(
        self, project: str | None, org_id: str = DEFAULT_ORG, label: str | None = None
    ) -> tuple[ApiKeyRecord, str]:
        return await self.mint_key(
            org_id=org_id,
            key_type=REGISTRATION_KEY,
            name=label,
            projects=[project] if project else None,
            scopes=list(WORKER_SCOPES),
        )

    # -- revocation --

    def is_revoked(self, credential_id: str | None) -> bool:
        return credential_id is not None and credential_id in self._revoked

    async def refresh_revocations(self) -> None:
        # A revocation is never undone, so what was revoked stays in the set: a refresh that
        # read the database before a revocation and finished after it cannot drop it.
        self._revoked = self._revoked | await self._store.revoked_credential_ids()

    def watch_revocations(self, notifier: Notifier) -> None:
        """Reload the revoked set whenever any server process revokes a key or client, and
        after a lost notification connection (when a revocation may have gone unheard)."""
        self._notifier = notifier
        notifier.listen(REVOCATIONS, self._on_revocation)

    def _on_revocation(self) -> None:
        task = asyncio.ensure_future(self.refresh_revocations())
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def revoke_key(self, key_id: str, by: Who = SYSTEM) -> ApiKeyRecord | None:
        """Revoke a key and, at once and on every server process, every runtime JWT minted
        from it (each carries its key's id). None if there is no such key."""
        revoked = await self._store.revoke_api_key(key_id, self._clock.now_ms())
        record = await self._store.get_api_key(key_id)
        if record is not None:
            self._keys.drop(record.token_hash)
            await self._announce_revocation()
            if revoked:
                await self._record(record.org_id, KEY_REVOKED, by, ("api_key", key_id), {})
        return record

    async def revoke_m2m_client(self, client_id: str, by: Who = SYSTEM) -> M2MClientRecord | None:
        """Revoke a client and every access token issued to it."""
        revoked = await self._store.revoke_m2m_client(client_id, self._clock.now_ms())
        record = await self._store.get_m2m_client(client_id)
        if record is not None:
            await self._announce_revocation()
            if revoked:
                entity = ("m2m_client", client_id)
                await self._record(record.org_id, M2M_CLIENT_REVOKED, by, entity, {})
        return record

    async def _announce_revocation(self) -> None:
        await self.refresh_revocations()
        if self._notifier is not None:
            await self._notifier.publish(REVOCATIONS)

    # -- runtime JWTs --

    def mint_runtime_token(self, worker_id: str, registration: ApiKeyRecord) -> tuple[str, int]:
        now_s = self._clock.now_ms() // 1000
        expires = now_s + self._settings.runtime_token_ttl_seconds
        projects = registration.projects
        claims: dict[str, Any] = {
            "iss": JWT_ISSUER,
            "jti": uuid.uuid4().hex,
            "sub": worker_id,
            # One project as a string (as the reference does), several as a list.
            "proj": projects[0] if projects and len(projects) == 1 else projects,
            "org": registration.org_id,
            "reg": registration.id,
            "scope": ["worker:poll", "worker:heartbeat", "session:write"],
            "iat": now_s,
            "exp": expires,
        }
        return self._sign(claims), expires * 1000

    def runtime_claims(self, token: str, *, allow_expired: bool = False) -> RuntimeClaims | None:
        """Verify a runtime JWT. Raises TokenExpired for an expired but otherwise valid token,
        TokenRevoked for one whose registration token was revoked."""
        claims = self._verified(token, JWT_ISSUER)
        if claims is None:
            return None
        if self.is_revoked(claims.get("reg")):
            raise TokenRevoked()
        if not allow_expired and int(claims["exp"]) * 1000 <= self._clock.now_ms():
            raise TokenExpired()
        proj = claims.get("proj")
        return RuntimeClaims(
            worker_id=str(claims["sub"]),
            registration_id=claims.get("reg"),
            projects=frozenset([proj] if isinstance(proj, str) else proj) if proj else None,
            org_id=str(claims.get("org") or DEFAULT_ORG),
        )

    def mint_session_token(
        self, session_id: str, worker_id: str, org_id: str, registration_id: str | None
    ) -> tuple[str, int]:
        """A token for one session's MCP endpoint, for the agent the worker runs (never the
        worker's own credential: an agent must not act as its worker)."""
        now_s = self._clock.now_ms() // 1000
        expires = now_s + self._settings.runtime_token_ttl_seconds
        claims: dict[str, Any] = {
            "iss": SESSION_TOKEN_ISSUER,
            "jti": uuid.uuid4().hex,
            "sub": session_id,
            "wkr": worker_id,
            "org": org_id,
            "reg": registration_id,
            "iat": now_s,
            "exp": expires,
        }
        return self._sign(claims), expires * 1000

    def session_token_claims(self, token: str) -> SessionTokenClaims | None:
        """Verify a session's MCP token; raises TokenExpired or TokenRevoked (its worker's
        registration token was revoked)."""
        claims = self._verified(token, SESSION_TOKEN_ISSUER)
        if claims is None:
            return None
        if self.is_revoked(claims.get("reg")):
            raise TokenRevoked()
        if int(claims["exp"]) * 1000 <= self._clock.now_ms():
            raise TokenExpired()
        return SessionTokenClaims(
            str(claims["sub"]), str(claims.get("wkr")), str(claims.get("org") or DEFAULT_ORG)
        )

    # -- M2M clients and their access tokens (OAuth 2.0 client_credentials) --

    async def mint_m2m_client(
        self, org_id: str, name: str, scopes: list[str], by: Who = SYSTEM
    ) -> tuple[M2MClientRecord, str]:
        client = M2MClientRecord(
            id="m2m_" + uuid.uuid4().hex,
            org_id=org_id,
            name=name,
            secret_hash="",
            created_at=self._clock.now_ms(),
            scopes=scopes,
        )
        secret = new_secret("m2ms_", 32)
        client = dataclasses.replace(client, secret_hash=digest(secret))
        await self._store.insert_m2m_client(client)
        entity = ("m2m_client", client.id)
        await self._record(org_id, M2M_CLIENT_CREATED, by, entity, {"scopes": scopes})
        return client, secret

    async def issue_access_token(
        self, client_id: str, secret: str, scopes: list[str] | None = None
    ) -> tuple[str, int, list[str]]:
        """An access token for a client's credentials, its lifetime in seconds and its
        scopes (the client's, or the subset `scopes` asks for). Raises InvalidClient for an
        unknown or revoked client or a wrong secret (one answer for all, compared in constant
        time), InvalidScope for a scope the client lacks."""
        client = await self._store.get_m2m_client(client_id)
        expected = client.secret_hash if client is not None else digest(uuid.uuid4().hex)
        if not same_secret(digest(secret), expected) or client is None:
            raise InvalidClient("Unknown client or wrong secret")
        if client.revoked_at is not None:
            raise InvalidClient("The client was revoked")
        granted = client.scopes if scopes is None else scopes
        if not set(granted) <= set(client.scopes) and "*" not in client.scopes:
            raise InvalidScope(
                f"The client has no scope {sorted(set(granted) - set(client.scopes))[0]}"
            )
        now_s = self._clock.now_ms() // 1000
        claims = {
            "iss": ACCESS_TOKEN_ISSUER,
            "aud": ACCESS_TOKEN_AUDIENCE,
            "sub": client.id,
            "org_id": client.org_id,
            "workspace_id": client.org_id,
            "scopes": granted,
            "jti": uuid.uuid4().hex,
            "iat": now_s,
            "exp": now_s + ACCESS_TOKEN_TTL_SECONDS,
        }
        return self._sign(claims), ACCESS_TOKEN_TTL_SECONDS, granted

    def access_token_principal(self, token: str) -> Principal | None:
        """Who an access token speaks for; None for one that is not a valid, live access
        token of a client that is not revoked."""
        claims = self._verified(token, ACCESS_TOKEN_ISSUER, ACCESS_TOKEN_AUDIENCE)
        if claims is None or int(claims["exp"]) * 1000 <= self._clock.now_ms():
            return None
        if self.is_revoked(claims["sub"]):
            return None
        scopes = claims.get("scopes")
        return Principal(
            org_id=str(claims.get("org_id") or DEFAULT_ORG),
            projects=None,
            scopes=frozenset(s for s in scopes if isinstance(s, str))
            if isinstance(scopes, list)
            else frozenset(),
            identity=str(claims["sub"]),
        )

    # -- signing --

    def _sign(self, claims: dict[str, Any]) -> str:
        key = self.signing_keys.current
        return jwt.encode(claims, key.secret, algorithm="HS256", headers={"kid": key.kid})

    def _verified(
        self, token: str, issuer: str, audience: str | None = None
    ) -> dict[str, Any] | None:
        """The claims of a token signed with one of our keys by `issuer` (expiry is the
        caller's to check: an expired runtime JWT may still be refreshed)."""
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
                    issuer=issuer,
                    audience=audience,
                    options={"verify_exp": False, "require": ["sub", "exp", "jti"]},
                )
            except jwt.PyJWTError:
                continue
            return claims
        return None


def _grants(scopes: list[str], scope: str) -> bool:
    return "*" in scopes or scope in scopes
