"""Console sign-in: the admin key or an organisation's API key, entered once, becomes an
opaque login token the console keeps in an HTTP-only cookie. The key itself is never kept.

A token is `v1.<kid>.<payload>.<mac>`: the payload names who signed in (`admin`, or the API
key's id), when the login ends, and the login's CSRF secret; the MAC is HMAC-SHA256 under a
key derived from the server's signing key `kid` (service/signing_keys.py: outside the
database, shared by every server process). Derived under its own label, it can never pass
for a runtime JWT, nor a JWT for it. Every use re-checks the credential: a revoked or expired
API key, or a changed admin key, ends its logins at once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from shopfloor.clock import Clock
from shopfloor.service.actors import OPERATOR, Principal
from shopfloor.service.auth import Credentials
from shopfloor.store import Store
from shopfloor.store.tenancy_records import USER_KEY, ApiKeyRecord

VERSION = "v1"
LOGIN_TTL_MS = 12 * 3600 * 1000
ADMIN = "admin"
_LABEL = b"shopfloor console login v1"


@dataclass(frozen=True)
class ConsoleLogin:
    who: Principal
    csrf: str  # the secret every form of this login carries back
    expires_at: int


class ConsoleLogins:
    def __init__(self, credentials: Credentials, store: Store, clock: Clock) -> None:
        self._credentials = credentials
        self._store = store
        self._clock = clock

    async def sign_in(self, presented: str) -> tuple[str, ConsoleLogin] | None:
        """A login token for the admin key or a usable user API key; None for anything else."""
        presented = presented.strip()
        creds = self._credentials
        if creds.is_admin(presented):
            subject, binding, who = ADMIN, creds.admin_binding() or "", OPERATOR
        else:
            key = await creds.api_key(presented)
            if key is None or key.key_type != USER_KEY:
                return None
            subject, binding, who = key.id, "", _principal(key)
        login = ConsoleLogin(who, secrets.token_hex(16), self._clock.now_ms() + LOGIN_TTL_MS)
        payload = {"sub": subject, "bind": binding, "exp": login.expires_at, "csrf": login.csrf}
        return self._seal(payload), login

    async def resume(self, token: str) -> ConsoleLogin | None:
        """The login a token stands for, if its MAC holds, it has not ended, and its
        credential is still good."""
        payload = self._open(token)
        if payload is None or int(payload.get("exp", 0)) <= self._clock.now_ms():
            return None
        subject, csrf = payload.get("sub"), payload.get("csrf")
        if not isinstance(subject, str) or not isinstance(csrf, str):
            return None
        who = await self._still_good(subject, payload.get("bind"))
        return None if who is None else ConsoleLogin(who, csrf, int(payload["exp"]))

    async def _still_good(self, subject: str, binding: object) -> Principal | None:
        creds = self._credentials
        if subject == ADMIN:
            current = creds.admin_binding()
            if current is None or not isinstance(binding, str):
                return None
            return OPERATOR if hmac.compare_digest(current, binding) else None
        key = await self._store.get_api_key(subject)
        if key is None or key.key_type != USER_KEY or creds.is_revoked(key.id):
            return None
        if not key.usable_at(self._clock.now_ms()):
            return None
        return _principal(key)

    def _seal(self, payload: dict[str, Any]) -> str:
        key = self._credentials.signing_keys.current
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        signed = f"{VERSION}.{key.kid}.{body}"
        return f"{signed}.{_b64(_mac(key.secret, signed))}"

    def _open(self, token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != VERSION:
            return None
        _, kid, body, mac = parts
        signed = f"{VERSION}.{kid}.{body}"
        for key in self._credentials.signing_keys.verifying(kid):
            if hmac.compare_digest(_b64(_mac(key.secret, signed)), mac):
                try:
                    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
                except ValueError:
                    return None
                return payload if isinstance(payload, dict) else None
        return None


def _principal(key: ApiKeyRecord) -> Principal:
    projects = None if key.projects is None else frozenset(key.projects)
    return Principal(key.org_id, projects, frozenset(key.scopes), identity=key.id)


def _mac(secret: str, message: str) -> bytes:
    derived = hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest()
    return hmac.new(derived, message.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
