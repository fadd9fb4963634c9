"""The store interface. Every backend implements it and passes tests/store/test_contract.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from shopfloor.store.records import (
    Expect,
    RegistrationTokenRecord,
    SessionEvent,
    SessionFilter,
    SessionRecord,
    WorkerRecord,
)


class Store(Protocol):
    """Persistence for the queue engine. Each method is one atomic step."""

    dialect: str

    async def migrate(self) -> None: ...
    async def close(self) -> None: ...

    # -- settings (server-wide secrets and flags) --
    async def get_setting(self, key: str) -> str | None: ...
    async def put_setting_if_absent(self, key: str, value: str) -> str:
        """Store `value` unless the key exists; return whichever value is stored."""
        ...

    # -- registration tokens --
    async def insert_registration_token(self, token: RegistrationTokenRecord) -> None: ...
    async def find_registration_token(self, token_hash: str) -> RegistrationTokenRecord | None: ...
    async def get_registration_token(self, token_id: str) -> RegistrationTokenRecord | None: ...
    async def list_registration_tokens(self) -> list[RegistrationTokenRecord]: ...
    async def revoke_registration_token(self, token_id: str, now: int) -> bool: ...

    # -- workers --
    async def insert_worker(self, worker: WorkerRecord) -> None: ...
    async def get_worker(self, worker_id: str) -> WorkerRecord | None: ...
    async def touch_worker(
        self, worker_id: str, now: int, active_count: int | None
    ) -> WorkerRecord | None:
        """Record a heartbeat of an active worker; None if it is unknown or no longer active."""
        ...

    async def end_worker(
        self, worker_id: str, status: str, now: int, silent_since: int | None = None
    ) -> bool:
        """Move an active worker to `status` (dead or deregistered); False if it was not active
        (or, with `silent_since`, if it sent a heartbeat at or after that time)."""
        ...

    async def list_workers(self, status: str | None = None) -> list[WorkerRecord]: ...
    async def silent_workers(self, cutoff: int) -> list[str]:
        """Active workers whose last heartbeat is older than `cutoff`."""
        ...

    async def count_live_sessions(self, worker_id: str) -> int: ...

    # -- sessions --
    async def insert_session(self, session: SessionRecord, event: SessionEvent) -> None: ...
    async def get_session(self, session_id: str) -> SessionRecord | None: ...
    async def list_sessions(self, flt: SessionFilter) -> list[SessionRecord]: ...
    async def live_sessions_of(self, worker_id: str) -> list[SessionRecord]: ...
    async def count_pending(self, queue: str) -> int: ...
    async def claim_next(
        self,
        queue: str,
        worker_id: str,
        limit: int,
        now: int,
        projects: Sequence[str] | None = None,
        lease_expires_at: int | None = None,
        capacity: int | None = None,
    ) -> list[SessionRecord]:
        """Atomically move up to `limit` pending sessions of `queue` to `claimed` for the
        worker, in (priority, queued_at, id) order, bumping each lease epoch. With
        `capacity`, the worker must be active and is never given more than its free slots."""
        ...

    async def claim_session(
        self,
        session_id: str,
        queue: str,
        worker_id: str,
        now: int,
        lease_expires_at: int | None = None,
    ) -> SessionRecord | None:
        """Claim one named pending session; None if it is not pending in `queue`."""
        ...

    async def update_session(
        self,
        session_id: str,
        expect: Expect,
        changes: Mapping[str, Any],
        event: SessionEvent | None,
    ) -> SessionRecord | None:
        """Apply `changes` only if the session still matches `expect`; None otherwise."""
        ...

    async def expired_leases(self, now: int, limit: int = 100) -> list[SessionRecord]: ...
    async def session_events(
        self, session_id: str, kinds: Sequence[str] | None = None
    ) -> list[SessionEvent]: ...
