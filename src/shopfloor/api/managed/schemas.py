"""OpenAPI descriptions of the managed-agents API's bodies. The routes check bodies themselves
(parse.py), so that an error names the field in the environment API's envelope; these models
document the shapes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class ModelConfig(_Doc):
    id: str = Field(description="Model name sent to the Messages API")
    speed: str | None = None
    effort: str | None = None


class ModelChoice(ModelConfig):
    """A model as a request names it (the reply's ModelConfig has the same fields)."""


class AgentCreate(_Doc):
    name: str
    model: str | ModelChoice
    system: str | None = None
    description: str | None = None
    tools: list[dict[str, Any]] = Field(
        default_factory=list,
        description="agent_toolset_20260401 (bash, read, write, edit, glob, grep run by the "
        "worker), custom tools (answered by the client), mcp_toolset (stored, not offered)",
    )
    skills: list[Any] = Field(default_factory=list, description="Must be empty")
    mcp_servers: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict, description="At most 16 pairs")
    multiagent: None = None
    execution_identity: dict[str, Any] | None = None


class AgentUpdate(_Doc):
    version: int | None = Field(None, description="Fail with 409 unless this is current")
    name: str | None = None
    model: str | ModelChoice | None = None
    system: str | None = None
    description: str | None = None
    tools: list[dict[str, Any]] | None = None
    metadata: dict[str, str | None] | None = Field(None, description="Merge patch")


class AgentObject(_Doc):
    id: str
    type: Literal["agent"]
    version: int
    name: str
    model: ModelConfig
    system: str | None
    description: str | None
    tools: list[dict[str, Any]]
    skills: list[Any]
    mcp_servers: list[dict[str, Any]]
    metadata: dict[str, str]
    multiagent: None
    execution_identity: dict[str, Any]
    created_at: str
    updated_at: str
    archived_at: str | None


class AgentList(_Doc):
    data: list[AgentObject]
    next_page: str | None


class ManagedSessionCreate(_Doc):
    agent: str | dict[str, Any] = Field(
        description='An agent id (latest version), {"type":"agent","id","version"} or '
        '{"type":"agent_with_overrides","id","version","model","system","tools",…}'
    )
    environment_id: str
    initial_events: list[dict[str, Any]] = Field(
        default_factory=list, description="user.message / user.define_outcome, at most 50"
    )
    resources: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    title: str | None = None


class ManagedSessionUpdate(_Doc):
    title: str | None = None
    metadata: dict[str, str | None] | None = Field(None, description="Merge patch")


class SessionObject(_Doc):
    id: str
    type: Literal["session"]
    status: Literal["idle", "running", "rescheduling", "terminated"]
    environment_id: str
    agent: dict[str, Any]
    resources: list[Any]
    metadata: dict[str, str]
    title: str | None
    created_at: str
    updated_at: str
    archived_at: str | None
    usage: dict[str, int]
    stats: dict[str, Any]
    outcome_evaluations: list[Any]
    vault_ids: list[str]


class SessionList(_Doc):
    data: list[SessionObject]
    next_page: str | None


class SessionCanceled(_Doc):
    id: str
    type: Literal["session"]
    status: Literal["canceling"]


class ThreadObject(_Doc):
    id: str = Field(description="sthr_ + the session id's hex: the session's primary thread")
    type: Literal["session_thread"]
    session_id: str
    parent_thread_id: None
    agent: dict[str, Any]
    status: Literal["idle", "running", "rescheduling", "terminated"]
    stats: dict[str, Any]
    usage: dict[str, int]
    created_at: str
    updated_at: str
    archived_at: str | None


class ThreadList(_Doc):
    data: list[ThreadObject]
    next_page: str | None


class DeletedSession(_Doc):
    id: str
    type: Literal["session_deleted"]


class EventObject(_Doc):
    id: str
    type: str
    processed_at: str
    turn_id: str | None = Field(
        None, description="The turn the event belongs to (absent between turns)"
    )


class EventList(_Doc):
    data: list[EventObject]
    next_page: str | None


class EventsSend(_Doc):
    events: list[dict[str, Any]] = Field(
        description="user.message, user.tool_result, user.custom_tool_result, "
        "user.tool_confirmation, user.interrupt, user.define_outcome, system.message"
    )


class EventsSent(_Doc):
    data: list[EventObject]
