"""OpenAPI schemas of the Veryfront agent-workers protocol (wire.py builds the objects). The
request models describe a body for the document only: the routes check their bodies themselves
(parse.py), with the error strings the npm client matches."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from shopfloor.api.openapi import (
    ADMIN_KEY,
    API_KEY_HEADER,
    REGISTRATION_TOKEN,
    VERYFRONT_WORKER_TOKEN,
    WORKER_KEY,
    tag,
)
from shopfloor.api.veryfront.parse import (
    IMPLEMENTATION_KIND,
    LEASE_MAX,
    LEASE_MIN,
)
from shopfloor.api.veryfront.parse import (
    WORKER_KEY as WORKER_KEY_PATTERN,
)

VERYFRONT = tag(
    "Veryfront agent-workers",
    "The routes of `createExternalAgentWorkerClient` (npm `veryfront/agent`): worker "
    "registration, run claims and leases, AG-UI event appends, run admission and completion. "
    "Project tokens: the admin key, the static worker key or a registration token "
    "(`rsp_live_…` only for its project); a `vfw_…` worker token acts only for its worker. "
    'Any of them may come in `x-api-key`. Errors are `{"detail", "error"}`.',
    ADMIN_KEY,
    WORKER_KEY,
    REGISTRATION_TOKEN,
    VERYFRONT_WORKER_TOKEN,
    API_KEY_HEADER,
)
PROJECT_TOKENS = (ADMIN_KEY, WORKER_KEY, REGISTRATION_TOKEN, API_KEY_HEADER)

RunStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
Terminal = Literal["completed", "failed", "cancelled"]


# -- requests --


class WorkerRegistration(BaseModel):
    implementation_kind: str = Field(pattern=IMPLEMENTATION_KIND.pattern)
    worker_key: str = Field(pattern=WORKER_KEY_PATTERN.pattern)
    implementation_display_name: str | None = Field(None, min_length=1, max_length=128)
    display_name: str | None = Field(None, min_length=1, max_length=128)
    metadata: dict[str, Any] | None = None


class LeaseRequest(BaseModel):
    lease_duration_seconds: int = Field(ge=LEASE_MIN, le=LEASE_MAX)


class WorkerSessionUpdate(BaseModel):
    session_key: str = Field(min_length=1, max_length=512)
    status: Literal["active", "completed", "failed", "cancelled"] | None = None
    metadata: dict[str, Any] | None = Field(None, description="null clears it")


class AgUiEvent(BaseModel):
    """An AG-UI event: its type, and whatever else it carries (at most 240 KiB)."""

    type: str = Field(min_length=1, max_length=64)


class EventAppend(BaseModel):
    events: list[AgUiEvent] = Field(min_length=1, max_length=100)
    expected_previous_external_event_sequence: int | None = Field(
        None, ge=0, description="Must equal the run's current latest_external_event_sequence"
    )
    expected_previous_event_id: int | None = Field(
        None, ge=0, description="Must equal the run's current latest_event_id"
    )


class RunCompletion(BaseModel):
    status: Terminal
    terminal_error_code: str | None = Field(None, min_length=1, max_length=200)
    terminal_error_message: str | None = Field(None, min_length=1, max_length=10_000)
    metadata: dict[str, Any] | None = None


# -- replies --


class AgentWorkerView(BaseModel):
    id: str
    project_id: str
    implementation_kind: str
    implementation_display_name: str | None
    worker_key: str
    display_name: str | None
    status: Literal["active", "disabled"]
    connection_status: Literal["online", "offline"]
    metadata: Any
    last_heartbeat_at: str | None
    created_at: str | None
    updated_at: str | None


class WorkerRegistered(BaseModel):
    worker: AgentWorkerView
    token: str = Field(description="The worker token (vfw_…), shown once")


class WorkerHeartbeatReply(BaseModel):
    worker: AgentWorkerView
    token: None


class WorkerSessionView(BaseModel):
    id: str
    run_id: str
    implementation_kind: str
    worker_id: str
    session_key: str
    status: str
    metadata: Any
    created_at: str | None
    updated_at: str | None
    ended_at: str | None


class RunView(BaseModel):
    run_id: str
    conversation_id: str
    message_id: str
    project_id: str
    agent_id: str
    implementation_kind: str
    worker_key: str | None
    status: RunStatus
    request_snapshot: dict[str, Any] | None
    latest_event_id: int
    latest_external_event_sequence: int
    lease_owner: str | None
    lease_expires_at: str | None
    worker_session: WorkerSessionView | None
    waiting_tool_call_id: None
    waiting_tool_name: None
    source_target_kind: Literal["project"]
    source_target_environment_id: None
    source_target_branch_id: None
    source_target_release_version: None
    runtime_target_kind: None
    runtime_target_environment_id: None
    runtime_target_branch_id: None
    terminal_error_code: str | None
    terminal_error_message: str | None
    session_id: str
    created_at: str | None
    updated_at: str | None


class RunLease(BaseModel):
    run: RunView | None = Field(description="null: nothing to claim, or the lease is lost")


class WorkerSessionReply(BaseModel):
    session: WorkerSessionView | None


class WorkerRetired(BaseModel):
    deleted: bool
    worker: AgentWorkerView
    released_run_count: int


class EventsAppended(BaseModel):
    run: RunView
    latest_event_id: int
    latest_external_event_sequence: int
    appended_count: int
    appended: bool


class RunCompleted(BaseModel):
    completed: bool
    run: RunView
    status: RunStatus


# -- errors --


class VeryfrontError(BaseModel):
    detail: str = Field(description="What is wrong; some strings are matched by the client")
    error: str = Field(description="The HTTP reason phrase")
