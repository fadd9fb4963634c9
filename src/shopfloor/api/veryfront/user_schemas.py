"""OpenAPI descriptions of the Veryfront user-side routes (runs, conversations, input requests).

The routes read their bodies themselves, to answer every refusal in the Veryfront envelope
with the exact text the client expects; these models only document the shapes, which follow
the `veryfront` npm package's zod schemas (shared/protocols/sessions-and-veryfront-runs.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shopfloor.api.openapi import (
    ADMIN_KEY,
    API_KEY_HEADER,
    REGISTRATION_TOKEN,
    VERYFRONT_WORKER_TOKEN,
    WORKER_KEY,
    errors,
    ok,
    tag,
)
from shopfloor.api.veryfront.schemas import VeryfrontError

Json = Any


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class RunOwner(BaseModel):
    kind: Literal["conversation", "project"]
    id: str


class RunError(BaseModel):
    message: str
    code: str | None = Field(None, description="Left out when there is none.")
    detail: Json = None


class Run(_Open):
    """The canonical run (`veryfront/runs` RunSchema); the conversation projection's keys
    (conversation_id, latest_event_id, waiting_tool_call_id, …) come with it."""

    run_id: str
    kind: Literal["agent", "task", "workflow", "eval"]
    status: Literal["pending", "running", "waiting", "completed", "failed", "cancelled"]
    owner: RunOwner
    parent_run_id: str | None
    root_run_id: str
    waiting_reason: str | None = Field(description='"tool" while an input request is open')
    metadata: Json = Field(description="The completion metadata: provider, model, tokens, …")
    target: str | None
    workflow_id: str | None
    schedule_id: str | None
    batch_id: str | None
    runtime_target_kind: Literal["main_branch", "environment", "preview_branch"] | None
    runtime_target_environment_id: str | None
    runtime_target_branch_id: str | None
    input: Json
    config: Json
    output: Json
    error: RunError | None
    logs: str | None
    artifacts: list[Json]
    duration_ms: int | None
    exit_code: int | None
    start_mode: str | None
    timeout_seconds: int | None
    backoff_limit: int | None
    trigger_kind: Literal["manual", "schedule", "webhook", "api"] | None
    trigger_id: str | None
    created_by: str | None
    created_at: str
    updated_at: str
    started_at: str | None
    completed_at: str | None


class PageInfo(BaseModel):
    """Cursors: `next` is what to pass as `cursor` (run lists) or `after_event_id` (events)."""

    self: str | None
    first: None
    next: str | None
    prev: str | None


class RunEvent(BaseModel):
    event_id: int
    event_type: str
    payload: Json
    created_at: str


class RunEventList(BaseModel):
    data: list[RunEvent]
    page_info: PageInfo


class RunList(BaseModel):
    data: list[Run]
    page_info: PageInfo


class CancelRunResponse(BaseModel):
    cancelled: bool = Field(description="false when the run had already ended")
    run: Run


class CreateRunRequest(_Open):
    """The canonical form (`kind`, `owner`, `public_id`, `request`); the documented
    `config.agent_admission` form is accepted too."""

    kind: Literal["agent", "task", "workflow", "eval"] = "agent"
    owner: RunOwner | None = None
    public_id: str | None = Field(None, description="The run id; repeated: the same run")
    parent_run_id: str | None = None
    request: dict[str, Json] | None = Field(
        None,
        description="implementation_kind, worker_key, agent_id, input, request_snapshot, "
        "name, target, workflow_id, batch_id, runtime_target_*, source_target_*, config, "
        "timeout_seconds, backoff_limit, start_mode",
    )
    project_id: str | None = None


class CreateRunResponse(_Open):
    accepted: bool
    duplicate: bool
    run: Run


class Conversation(_Open):
    id: str
    project_id: str | None
    title: str | None
    type: str
    status: Literal["active"]
    metadata: dict[str, Json] | None
    message_count: int
    created_at: str
    updated_at: str


class ConversationCreate(_Open):
    title: str | None = None
    project_id: str | None = Field(None, description="Project UUID or slug")
    type: str | None = None
    metadata: dict[str, Json] | None = None


class ConversationPatch(BaseModel):
    project_id: str | None = Field(None, description="Link an unlinked conversation")
    title: str | None = None
    metadata: dict[str, Json] | None = None


class DeletedConversation(BaseModel):
    id: str
    deleted: bool
    cancelled_run_ids: list[str]


class MessagePart(_Open):
    type: Literal[
        "text",
        "image",
        "file",
        "tool_call",
        "tool_result",
        "reasoning",
        "citation",
        "step_start",
        "error",
        "data",
    ]


class Message(BaseModel):
    id: str
    conversation_id: str
    seq: int
    role: Literal["user", "assistant", "system", "tool"]
    status: str
    parts: list[MessagePart]
    parent_id: str | None
    idempotency_key: str | None
    metadata: dict[str, Json] | None
    created_at: str
    updated_at: str


class MessageCreate(BaseModel):
    role: Literal["user", "assistant", "system", "tool"]
    parts: list[MessagePart]
    idempotency_key: str | None = Field(None, description="A repeat returns the same message")
    parent_id: str | None = None
    metadata: dict[str, Json] | None = None
    status: str | None = None


class MessageList(BaseModel):
    data: list[Message]
    page_info: PageInfo


class InputResponse(BaseModel):
    id: str
    input_request_id: str
    conversation_id: str
    run_id: str
    actor_type: str
    actor_id: str
    values: dict[str, str | bool | float | None]
    created_at: str


class InputRequest(_Open):
    id: str
    conversation_id: str
    run_id: str
    tool_call_id: str
    kind: Literal["form"]
    status: Literal["open", "submitted", "cancelled", "expired"]
    requested_responder_type: Literal["human", "agent", "system"]
    title: str
    description: str | None
    fields: list[dict[str, Json]]
    metadata: dict[str, Json] | None
    recommendations: dict[str, Json] | None
    created_at: str
    expires_at: str | None
    submitted_at: str | None
    cancelled_at: str | None
    expired_at: str | None
    latest_response: InputResponse | None


class InputRequestCreate(BaseModel):
    run_id: str
    tool_call_id: str
    kind: Literal["form"]
    requested_responder_type: Literal["human", "agent", "system"] = "human"
    title: str
    description: str | None = None
    fields: list[dict[str, Json]] = Field(min_length=1)
    expires_at: str | None = None
    metadata: dict[str, Json] | None = None


class InputRequestList(BaseModel):
    data: list[InputRequest]


class InputResponseCreate(BaseModel):
    values: dict[str, str | bool | float | None]


VERYFRONT_USER = tag(
    "Veryfront runs and conversations",
    "The user side of the Veryfront protocol (`veryfront/runs`, the conversation and "
    "human-input helpers of `veryfront/agent`): runs (create, read, events as JSON pages or a "
    "live server-sent stream, cancel), conversations, messages and input requests. Project "
    "tokens: the admin key, the static worker key or a registration token (`rsp_live_…` only "
    "for its project); a `vfw_…` worker token reads only its own runs. Any of them may come "
    'in `x-api-key`. Errors are `{"detail", "error"}`.',
    ADMIN_KEY,
    WORKER_KEY,
    REGISTRATION_TOKEN,
    VERYFRONT_WORKER_TOKEN,
    API_KEY_HEADER,
)
# Every user-side route: bad input, no key, another project's key, an unknown run or
# conversation, a body over the limit.
USER_ERRORS = errors(VeryfrontError, 400, 401, 403, 404, 413)


def reply(model: type[BaseModel], status: int = 200, *codes: int) -> dict[int | str, Any]:
    """`responses` of a reply of this shape, and the errors beyond USER_ERRORS."""
    return {**ok(model, status), **errors(VeryfrontError, *codes)}
