"""Records of the managed-agent tables: agents and the managed state of a session. Every
timestamp is epoch milliseconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shopfloor.store.tenancy_records import DEFAULT_ORG

# Managed session statuses (the wire's), and the agent loop's turn states.
IDLE = "idle"
RUNNING = "running"
TERMINATED = "terminated"
TURN_IDLE = "idle"
TURN_MODEL = "model"  # a model call is due, or running under the turn lease
TURN_TOOLS = "tools"  # the turn waits for tool results or confirmations


@dataclass(frozen=True)
class AgentRecord:
    """An agent's head: its current version. The definitions are AgentVersionRecords."""

    id: str
    version: int
    created_at: int
    updated_at: int
    project: str | None = None
    archived_at: int | None = None
    org_id: str = DEFAULT_ORG


@dataclass(frozen=True)
class AgentVersionRecord:
    agent_id: str
    version: int
    definition: dict[str, Any]
    created_at: int


@dataclass(frozen=True)
class ManagedSessionRecord:
    session_id: str
    environment_id: str
    agent: dict[str, Any]
    status: str
    created_at: int
    updated_at: int
    agent_id: str | None = None
    agent_version: int | None = None
    title: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    resources: list[Any] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    turn: str = TURN_IDLE
    pending: list[dict[str, Any]] = field(default_factory=list)
    unfed: list[dict[str, Any]] = field(default_factory=list)
    turn_owner: str | None = None
    turn_epoch: int = 0
    turn_expires_at: int | None = None
    turn_id: str | None = None  # the turn the session is in; None between turns
    rev: int = 0
    archived_at: int | None = None
    deleted_at: int | None = None


@dataclass(frozen=True)
class ManagedFilter:
    environment_id: str | None = None  # only this environment's sessions
    org_id: str | None = None  # only this organisation's sessions
    agent_id: str | None = None
    agent_version: int | None = None
    statuses: tuple[str, ...] = ()
    include_archived: bool = False
    created_after: int | None = None  # created_at > this
    created_before: int | None = None  # created_at < this
    after_id: str | None = None  # page cursor, in the order asked
    descending: bool = True
    limit: int = 20


@dataclass(frozen=True)
class EventQuery:
    kinds: tuple[str, ...]
    after_id: int | None = None  # page cursor (in the order asked)
    above: int | None = None  # id > this, whatever the order
    below: int | None = None  # id < this, whatever the order
    descending: bool = False
    at_after: int | None = None  # at > this
    at_before: int | None = None  # at < this
    limit: int = 1000
