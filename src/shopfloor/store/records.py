"""Plain records the store reads and writes. Every timestamp is epoch milliseconds."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import KW_ONLY, asdict, dataclass, field, fields
from typing import Any

from shopfloor.store.tenancy_records import DEFAULT_ORG

# Session statuses. `pending` is queued and claimable; the live ones hold a lease.
PENDING = "pending"
CLAIMED = "claimed"
RUNNING = "running"
FINALIZING = "finalizing"
COMPLETED = "completed"
FAILED = "failed"
STOPPED = "stopped"
# Waiting for its issue's lock: not claimable until the holder ends (see store.channel).
PARKED = "parked"

LIVE_STATUSES: tuple[str, ...] = (CLAIMED, RUNNING, FINALIZING)
TERMINAL_STATUSES: tuple[str, ...] = (COMPLETED, FAILED, STOPPED)
ALL_STATUSES: tuple[str, ...] = (PENDING, *LIVE_STATUSES, *TERMINAL_STATUSES, PARKED)

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
    # Environment work items (sessions whose queue is an environment id):
    delivered_to: str | None = None  # Worker-ID of the last poll that delivered it, then the holder
    delivered_at: int | None = None
    started_at: int | None = None  # first heartbeat
    last_heartbeat_at: int | None = None
    lease_ttl_seconds: int | None = None
    ended_at: int | None = None
    metadata: dict[str, str] | None = None
    org_id: str = DEFAULT_ORG
    public_id: str | None = field(default=None, compare=False)  # derived: public_id_of(id)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> SessionRecord:
        """The record of a row holding every column of the sessions table. Built without
        the frozen dataclass's `__init__`, which sets each of the 35 fields through
        `object.__setattr__`: 4.6 µs against 0.7 µs, and every poll and report builds one.
        A row with other keys (a partial select) goes through `__init__`, which checks them."""
        if row.keys() != _SESSION_FIELDS:
            return cls(**row)
        record = object.__new__(cls)
        record.__dict__.update(row)
        return record

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


_SESSION_FIELDS = frozenset(f.name for f in fields(SessionRecord))


def public_id_of(session_id: str) -> str:
    """The session's id in the public Sessions API: 16 hex digits of its id's SHA-256."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


def session_row(session: SessionRecord) -> dict[str, Any]:
    """The values of a new sessions row, its public id included."""
    row = asdict(session)
    row["public_id"] = public_id_of(session.id)
    return row


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
    claim_seq: int = 0  # the store's own counter of polls that claimed (see workers table)
    undercount_since: int | None = None  # see Dispatcher.heartbeat
    org_id: str = DEFAULT_ORG


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
    org_id: str | None = None  # None: every organisation
    projects: frozenset[str] | None = None  # None: every project
    public_id: str | None = None


@dataclass(frozen=True)
class SessionStats:
    """An organisation's sessions at a glance (the public API's stats): how many wait, how
    many run, and since a moment (the start of the day) how many were made and finished."""

    queued: int
    working: int
    created_since: int
    completed_since: int
    cost_since: float
    cost_all_time: float


@dataclass(frozen=True)
class Expect:
    """Preconditions for a conditional session update (the lease fence)."""

    worker_id: str | None
    lease_epoch: int
    statuses: tuple[str, ...] = ()
    _: KW_ONLY
    # Further columns that must still hold these values (None means IS NULL): compare-and-set.
    columns: dict[str, Any] = field(default_factory=dict)
    # If set, the lease must not have expired at this time (lease_expires_at >= it).
    lease_valid_at: int | None = None
    # Only if the session's lease is set and ran out before this time (ms): a reaper's read
    # of an expired lease must not undo a renewal that landed after that read.
    lease_expired_by: int | None = None
    # Skip the epoch check: for a write that did not read the session first and is fenced by
    # owner and status alone (a protocol whose reports carry no epoch).
    any_epoch: bool = False


@dataclass(frozen=True)
class WorkerPoll:
    """What one poll hands a worker: the sessions it just claimed, the unacknowledged inbox
    messages of the sessions it holds, and how many more sessions it could take."""

    claimed: list[SessionRecord]
    inbox: list[InboxMessage]
    free: int  # the worker's capacity less its live sessions, these claims included


PROJECT_ENVIRONMENT = "environment"


@dataclass(frozen=True)
class Delivery:
    """A look at an environment's work queue: whether the environment exists, and the item
    it delivered (None when none was due, and always when there is no such environment)."""

    environment_found: bool
    item: SessionRecord | None


@dataclass(frozen=True)
class ProjectRecord:
    """A tenant/queue boundary. An environment of the work API is a project of kind
    `environment`; its id is also the queue name of its sessions."""

    id: str
    kind: str
    name: str
    created_at: int
    updated_at: int
    description: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    scope: str | None = None
    archived_at: int | None = None
    org_id: str = DEFAULT_ORG


@dataclass(frozen=True)
class InboxMessage:
    """An operator message to a running session: stop, directive (prompt), nudge, hook-result."""

    id: str
    session_id: str
    type: str
    lane: str
    payload: str
    created_at: int
    user_id: str | None = None
    user_name: str | None = None
    delivered_at: int | None = None
    delivery_count: int = 0
    acked_at: int | None = None
    archived_at: int | None = None


@dataclass(frozen=True)
class IssueLock:
    issue_id: str
    session_id: str
    locked_at: int
    expires_at: int
    work_type: str | None = None
    org_id: str = DEFAULT_ORG  # locks are per organisation: (org_id, issue_id) is the key


@dataclass(frozen=True)
class FileLock:
    repo_id: str
    path: str
    session_id: str
    reserved_at: int
    expires_at: int
    reason: str | None = None
    worker_id: str | None = None  # who reserved it; None if the caller named no worker


@dataclass(frozen=True)
class IssueRecord:
    """What the issue-tracker proxy serves in place of Linear."""

    id: str
    identifier: str
    created_at: int
    updated_at: int
    title: str | None = None
    description: str | None = None
    state_name: str | None = None
    labels: list[str] = field(default_factory=list)
    parent_id: str | None = None
    project: str | None = None
    assignee: str | None = None
    org_id: str = DEFAULT_ORG


@dataclass(frozen=True)
class RecoveryPacket:
    id: str
    session_id: str
    created_at: int
    attempt: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueStats:
    depth: int  # pending and deliverable now
    pending: int  # pending, delivered recently and not acknowledged
    oldest_queued_at: int | None
    workers_polling: int
