"""Records of the integrations: webhook deliveries, per-organisation webhook secrets (kept
encrypted), and the audit log's entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A delivery's processing state.
DELIVERY_PENDING = "pending"
DELIVERY_PROCESSED = "processed"
DELIVERY_SKIPPED = "skipped"


@dataclass(frozen=True)
class WebhookDelivery:
    id: str  # the eventId answered to the provider
    org_id: str
    provider: str
    delivery_id: str  # the provider's own id of the delivery: the idempotency key
    event_type: str
    correlation_id: str
    body: dict[str, Any]
    received_at: int
    status: str = DELIVERY_PENDING
    reason: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    lease_owner: str | None = None
    lease_expires_at: int | None = None
    processed_at: int | None = None


@dataclass(frozen=True)
class WebhookSecretRecord:
    org_id: str
    provider: str
    ciphertext: str  # encrypted with the key in the webhook key file, never the database
    created_at: int


@dataclass(frozen=True)
class TriggerRule:
    """An operator's rule: a delivery of `provider` whose event type is `event_type` and
    whose body matches `match` (dotted path -> value, all equal) queues a session with the
    prompt `prompt_template` renders (`{{dotted.path}}` replaced by the body's value)."""

    id: str
    org_id: str
    provider: str
    event_type: str
    prompt_template: str
    created_at: int
    match: dict[str, Any] = field(default_factory=dict)
    work_type: str | None = None
    project: str | None = None
    priority: int | None = None
    # The issue a queued session is for (a template, e.g. `{{data.id}}`): one live session
    # per issue, and no second session of this rule for it within `cooldown_seconds`.
    issue_template: str | None = None
    cooldown_seconds: int | None = None


@dataclass(frozen=True)
class AuditRecord:
    id: str
    org_id: str
    sequence_number: int
    event_type: str
    actor_id: str
    actor_type: str
    entity_type: str
    entity_id: str
    payload: str  # RFC 8785 canonical JSON, kept as text so the hashed bytes never change
    prev_hash: str
    entry_hash: str
    signature: str
    signing_key_id: str
    occurred_at: int


@dataclass(frozen=True)
class AuditFact:
    """A session's creation, claim, stop, transfer or end waiting in the audit outbox for its
    chain entry."""

    id: int
    org_id: str
    session_id: str
    event_type: str
    worker_id: str | None
    status: str
    queue: str
    lease_epoch: int
    at: int
    # None for a claim or an end (the actor: the worker; payload: from the columns above).
    actor_id: str | None = None
    actor_type: str | None = None
    issue_id: str | None = None  # session.created: the session's issue
    payload: str | None = None  # stopped, transferred: their payload, canonical JSON


@dataclass(frozen=True)
class AuditBacklog:
    """An organisation's facts waiting in the audit outbox (the appender's lag)."""

    org_id: str
    waiting: int
    oldest_at: int  # epoch ms of the oldest one's action


@dataclass(frozen=True)
class AuditQuery:
    org_id: str
    limit: int = 50
    offset: int = 0
    after_sequence: int | None = None  # a cursor: entries after this sequence number
    event_type: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    session_id: str | None = None
    since: int | None = None
    until: int | None = None
