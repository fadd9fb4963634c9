"""Records of the run-oriented (Veryfront agent-workers) tables. A run is a view of a session
row plus the run row here; every timestamp is epoch milliseconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
