"""OpenAPI schemas of the environment work API (wire.py builds the objects), the same for the
Qoder and Anthropic paths. The request models describe a body for the document only: the routes
check their bodies themselves, with the error strings the SDKs see."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from shopfloor.api.environments.wire import DESCRIPTION_MAX, KEY_MAX, NAME_MAX, VALUE_MAX

WORK_STATES = Literal["queued", "starting", "active", "stopping", "stopped"]
Key = Annotated[str, StringConstraints(min_length=1, max_length=KEY_MAX)]
Value = Annotated[str, StringConstraints(max_length=VALUE_MAX)]
MAX_KEYS = 16
PATCH = f"Merge patch: a string sets a key, null deletes it; at most {MAX_KEYS} keys remain"


class SelfHostedConfig(BaseModel):
    type: Literal["self_hosted"]


# -- requests --


class EnvironmentCreate(BaseModel):
    name: str = Field(min_length=1, max_length=NAME_MAX)
    description: str | None = Field(None, max_length=DESCRIPTION_MAX)
    config: SelfHostedConfig | None = None
    metadata: dict[Key, Value] | None = Field(None, max_length=MAX_KEYS)
    scope: Literal["organization", "account"] | None = None


class EnvironmentUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=NAME_MAX)
    description: str | None = Field(None, max_length=DESCRIPTION_MAX)
    config: SelfHostedConfig | None = None
    metadata: dict[Key, Value | None] | None = Field(None, description=PATCH)
    scope: Literal["organization", "account"] | None = None


class WorkUpdate(BaseModel):
    metadata: dict[Key, Value | None] | None = Field(None, description=PATCH)


class HeartbeatBody(BaseModel):
    """The SDKs send these as query parameters; a JSON body is read when they are absent."""

    expected_last_heartbeat: str | None = Field(
        None, description="NO_HEARTBEAT, or the last_heartbeat the server returned last"
    )
    desired_ttl_seconds: int | None = Field(None, ge=1)


class StopBody(BaseModel):
    force: bool | None = Field(None, description="true: end the item at once")


# -- replies --


class Environment(BaseModel):
    id: str
    type: Literal["environment"]
    name: str
    description: str | None
    config: dict[str, Any]
    metadata: dict[str, str]
    scope: str | None
    status: Literal["ready", "archived"]
    archived: bool
    archived_at: str | None
    created_at: str
    updated_at: str


class EnvironmentPage(BaseModel):
    data: list[Environment]
    first_id: str | None
    last_id: str | None
    has_more: bool
    next_page: str | None = Field(description="Pass as `page` for the next page")


class EnvironmentDeleted(BaseModel):
    id: str
    type: Literal["environment_deleted"]


class WorkData(BaseModel):
    type: Literal["session"]
    id: str


class Work(BaseModel):
    id: str
    type: Literal["work"]
    environment_id: str
    data: WorkData
    state: WORK_STATES
    metadata: dict[str, str]
    created_at: str
    acknowledged_at: str | None
    started_at: str | None
    latest_heartbeat_at: str | None
    stop_requested_at: str | None
    stopped_at: str | None
    secret: None


class WorkPage(BaseModel):
    data: list[Work]
    first_id: str | None
    last_id: str | None
    has_more: bool
    next_page: str | None


class WorkStats(BaseModel):
    type: Literal["work_queue_stats"]
    depth: int
    pending: int
    oldest_queued_at: str | None
    workers_polling: int


class WorkHeartbeat(BaseModel):
    type: Literal["work_heartbeat"]
    last_heartbeat: str | None
    lease_extended: bool
    state: WORK_STATES
    ttl_seconds: int


# -- errors --


class EnvironmentErrorDetail(BaseModel):
    type: str = Field(description="invalid_request_error, authentication_error, …")
    message: str
    details: dict[str, Any] | None = Field(
        None, description="`error_code` (environment_not_found, heartbeat_precondition_failed…)"
    )


class EnvironmentError(BaseModel):
    type: Literal["error"]
    request_id: str
    error: EnvironmentErrorDetail
