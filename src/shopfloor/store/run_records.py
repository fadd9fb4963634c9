"""Records of the run-oriented (Veryfront agent-workers) tables. A run is a view of a session
row plus the run row here; every timestamp is epoch milliseconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shopfloor.store.tenancy_records import DEFAULT_ORG


@dataclass(frozen=True)
class AgentWorkerRecord:
    """The protocol details of a `workers` row registered over the agent-workers API."""

    worker_id: str
    project_id: str
    project_name: str
    implementation_kind: str
    worker_key: str
    token_hash: str
    created_at: int
    updated_at: int
    implementation_display_name: str | None = None
    display_name: str | None = None
    metadata: Any = None


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    session_id: str
    project_id: str
    conversation_id: str
    message_id: str
    agent_id: str
    implementation_kind: str
    created_at: int
    updated_at: int
    worker_key: str | None = None
    request_snapshot: dict[str, Any] | None = None
    latest_event_id: int = 0
    latest_external_event_sequence: int = 0
    idempotency_key: str | None = None
    terminal_error_code: str | None = None
    terminal_error_message: str | None = None
    completion_metadata: dict[str, Any] | None = None
    kind: str = "agent"  # agent, task, workflow or eval
    owner_kind: str = "conversation"  # the owner is the conversation, else the project
    parent_run_id: str | None = None
    root_run_id: str | None = None  # None: the run is its own root
    spec: dict[str, Any] | None = None  # the canonical request's other fields (RUN_SPEC_KEYS)
    output: Any = None
    waiting_tool_call_id: str | None = None  # set while the run waits for a tool's result
    waiting_tool_name: str | None = None
    started_at: int | None = None  # first claim
    completed_at: int | None = None


@dataclass(frozen=True)
class RunEventRecord:
    run_id: str
    event_id: int
    type: str
    at: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class WorkerSessionRecord:
    """A worker's own session for a run (PUT .../session), one per (run, worker)."""

    id: str
    run_id: str
    worker_id: str
    implementation_kind: str
    session_key: str
    status: str
    created_at: int
    updated_at: int
    metadata: Any = None
    ended_at: int | None = None


@dataclass(frozen=True)
class ConversationRecord:
    """A Veryfront conversation: the message thread that owns agent runs."""

    id: str
    created_at: int
    updated_at: int
    project_id: str | None = None  # a project UUID; None until linked
    project_name: str | None = None
    title: str | None = None
    type: str = "chat"
    metadata: dict[str, Any] | None = None
    message_count: int = 0  # also the seq of its newest message
    deleted_at: int | None = None
    org_id: str = DEFAULT_ORG


@dataclass(frozen=True)
class MessageRecord:
    id: str
    conversation_id: str
    seq: int  # 1, 2, … in the order the conversation received them
    role: str
    parts: list[dict[str, Any]]
    created_at: int
    updated_at: int
    status: str = "completed"
    metadata: dict[str, Any] | None = None
    parent_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class InputRequestRecord:
    """A form a run's tool call asks a person to fill in; the run waits for it."""

    id: str
    conversation_id: str
    run_id: str
    tool_call_id: str
    title: str
    fields: list[dict[str, Any]]
    created_at: int
    updated_at: int
    kind: str = "form"
    status: str = "open"  # open, submitted, cancelled or expired
    requested_responder_type: str = "human"
    description: str | None = None
    metadata: dict[str, Any] | None = None
    expires_at: int | None = None
    submitted_at: int | None = None
    cancelled_at: int | None = None
    expired_at: int | None = None
    response: dict[str, Any] | None = None  # the latest response: id, values, actor, created_at
