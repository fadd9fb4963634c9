"""The credential vault (rensei-platform.md §1.6-1.8): an organisation's secrets for its
agents' environments, and the env map a daemon injects into an agent it spawns.

Each value is sealed by the secret box (AES-256-GCM under the key file outside the database,
service/secret_box.py), bound to its organisation, project, environment and name, so a row
copied to another organisation or name does not open. A
value is never returned by the management routes, only in a snapshot to a daemon of its
organisation. The server's own credentials never reach an agent: names on the blocklist and
values that are shopfloor secrets are left out of every snapshot.

A change (a new value, a deletion, a rotation) is published on the organisation's topic, so
every process's rotate-stream subscribers re-read their env map and get an UPDATE."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from shopfloor.clock import Clock
from shopfloor.service.errors import InvalidInput
from shopfloor.service.notifier import Notifier
from shopfloor.service.secret_box import SecretBox, SecretBoxError
from shopfloor.store import Store
from shopfloor.store.tenancy_records import ALL, CredentialRecord

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_VALUE = 32 * 1024
MAX_SCOPE = 100
DEFAULT_ENV = "production"
REFRESH_MS = 15 * 60_000  # a daemon re-snapshots within this
# Never put into an agent's environment: the server's and the daemon's own credentials.
BLOCKED_NAMES = frozenset(
    {
        "WORKER_API_KEY",
        "RENSEI_API_KEY",
        "RENSEI_REGISTRATION_TOKEN",
        "AF_API_KEY",
        "AGENTFACTORY_API_KEY",
        "DATABASE_URL",
    }
)
BLOCKED_PREFIXES = ("SHOPFLOOR_",)
SECRET_PREFIXES = ("rsk_live_", "rsp_live_", "sfa_", "m2ms_", "vfw_")


@dataclass(frozen=True)
class Scope:
    """Where a credential applies: an organisation, one project or all (ALL), one
    environment or all."""

    org_id: str
    project: str = ALL
    env_name: str = ALL


def topic(org_id: str) -> str:
    return f"credentials:{org_id}"


def blocked(name: str, value: str, own_secrets: Iterable[str]) -> bool:
    """Whether a credential must stay out of agents' environments."""
    if name.upper() in BLOCKED_NAMES or name.upper().startswith(BLOCKED_PREFIXES):
        return True
    return value.startswith(SECRET_PREFIXES) or value in own_secrets


class Vault:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        notifier: Notifier,
        box: SecretBox,
        own_secrets: Iterable[str | None] = (),
    ) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier
        self.box = box
        self._own = frozenset(s for s in own_secrets if s)
        # This process's rotate-stream subscribers: organisation -> {signal: session id}.
        self._subscribers: dict[str, dict[asyncio.Event, str]] = {}

    # -- encryption --

    @staticmethod
    def _context(scope: Scope, name: str) -> str:
        return "credential:" + "\x1f".join((scope.org_id, scope.project, scope.env_name, name))

    def encrypt(self, scope: Scope, name: str, value: str) -> str:
        return self.box.seal(value, self._context(scope, name))

    def decrypt(self, record: CredentialRecord) -> str | None:
        """The value, or None if it does not open (a lost key, a moved row)."""
        scope = Scope(record.org_id, record.project, record.env_name)
        try:
            return self.box.open(record.ciphertext, self._context(scope, record.name))
        except SecretBoxError:
            return None

    # -- management --

    async def put(self, scope: Scope, name: str, value: str) -> CredentialRecord:
        check_scope(scope)
        if not NAME.match(name):
            raise InvalidInput("name", "name: must be an environment variable name")
        if not value or len(value) > MAX_VALUE:
            raise InvalidInput("value", f"value: must be 1 to {MAX_VALUE} characters")
        now = self.clock.now_ms()
        stored = await self.store.put_credential(
            CredentialRecord(
                id=f"cred_{secrets.token_hex(12)}",
                org_id=scope.org_id,
                project=scope.project,
                env_name=scope.env_name,
                name=name,
                ciphertext=self.encrypt(scope, name, value),
                created_at=now,
                updated_at=now,
            )
        )
        await self.notifier.publish(topic(scope.org_id))
        return stored

    async def delete(self, record: CredentialRecord) -> None:
        await self.store.delete_credential(record.id)
        await self.notifier.publish(topic(record.org_id))

    async def rotate(self, org_id: str) -> None:
        """Push the organisation's current values to every subscriber, on every process."""
        await self.notifier.publish(topic(org_id))

    # -- rotate-stream subscribers (of this process) --

    @contextlib.contextmanager
    def subscribed(self, org_id: str, session_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever the organisation's credentials change, on any process."""
        if org_id not in self._subscribers:
            self._subscribers[org_id] = {}
            self.notifier.listen(topic(org_id), lambda: self._signal(org_id))
        signal = asyncio.Event()
        self._subscribers[org_id][signal] = session_id
        try:
            yield signal
        finally:
            self._subscribers[org_id].pop(signal, None)

    def _signal(self, org_id: str) -> None:
        for signal in self._subscribers.get(org_id, {}):
            signal.set()

    def subscribers(self, org_id: str) -> int:
        """How many sessions of the organisation follow rotations on this process."""
        return len(set(self._subscribers.get(org_id, {}).values()))

    # -- what a daemon gets --

    async def env(self, scope: Scope) -> dict[str, str]:
        """The flat env map for a project and environment: organisation-wide values, then
        the environment's, then the project's, then the project's in that environment, each
        overriding the one before; blocked credentials left out."""
        found = await self.store.list_credentials(scope.org_id, scope.project, scope.env_name)
        found.sort(key=lambda c: (c.project != ALL, c.env_name != ALL))
        merged: dict[str, str] = {}
        for record in found:
            value = self.decrypt(record)
            if value is not None:
                merged[record.name] = value
        return {k: v for k, v in merged.items() if not blocked(k, v, self._own)}

    def refresh_until(self) -> int:
        return self.clock.now_ms() + REFRESH_MS


def check_scope(scope: Scope) -> None:
    if len(scope.project) > MAX_SCOPE:
        raise InvalidInput("projectId", f"projectId: at most {MAX_SCOPE} characters")
    if len(scope.env_name) > MAX_SCOPE:
        raise InvalidInput("envName", f"envName: at most {MAX_SCOPE} characters")
