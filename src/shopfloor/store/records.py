"""Plain records the store reads and writes. Every timestamp is epoch milliseconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Session statuses. `pending` is queued and claimable; the live ones hold a lease.
PENDING = "pending"
CLAIMED = "claimed"
RUNNING = "running"
FINALIZING = "finalizing"
COMPLETED = "completed"
FAILED = "failed"
STOPPED = "stopped"

LIVE_STATUSES: tuple[str, ...] = (CLAIMED, RUNNING, FINALIZING)
TERMINAL_STATUSES: tuple[str, ...] = (COMPLETED, FAILED, STOPPED)
ALL_STATUSES: tuple[str, ...] = (PENDING, *LIVE_STATUSES, *TERMINAL_STATUSES)

# Worker statuses.
WORKER_ACTIVE = "active"
WORKER_DEAD = "dead"
WORKER_DEREGISTERED = "deregistered"


@dataclass(frozen=True)
class SessionRecord:
    id: str
    queue: str
    status: str
    priority: int
    queued_at: int
    created_at: int
    updated_at: int
    lease_epoch: int = 0
    worker_id: str | None = None
    claimed_at: int | None = None
    lease_expires_at: int | None = None
    project: str | None = None
    issue_id: str | None = None
    issue_identifier: str | None = None
    title: str | None = None
    description: str | None = None
    prompt: str | None = None
    work_type: str | None = None
    repository: str | None = None
    agent_id: str | None = None
    provider_session_id: str | None = None
    worktree_path: str | None = None
    total_cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error_message: str | None = None
    stop_requested_at: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class SessionEvent:
    """One entry of a session's history: a status change, or (later) an activity."""

    session_id: str
    at: int
    kind: str
    status: str | None = None
    worker_id: str | None = None
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True)
class WorkerRecord:
    id: str
    protocol: str
    hostname: str
    capacity: int
    status: str
    registered_at: int
    last_heartbeat_at: int
    active_count: int = 0
    version: str | None = None
    projects: list[str] | None = None
    registration_id: str | None = None
    machine_id: str | None = None
    ended_at: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RegistrationTokenRecord:
    id: str
    kind: str
    token_hash: str
    created_at: int
    project: str | None = None
    org: str | None = None
    label: str | None = None
    revoked_at: int | None = None


@dataclass(frozen=True)
class SessionFilter:
    status: str | None = None
    queue: str | None = None
    project: str | None = None
    work_type: str | None = None
    worker_id: str | None = None
    issue_id: str | None = None
    before_id: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class Expect:
    """Preconditions for a conditional session update (the lease fence)."""

    worker_id: str | None
    lease_epoch: int
    statuses: tuple[str, ...] = ()
    # Only if the session's lease is set and ran out before this time (ms): a reaper's read
    # of an expired lease must not undo a renewal that landed after that read.
    lease_expired_by: int | None = None
