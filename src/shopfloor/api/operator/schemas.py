"""Request and response models of the operator API. Field names follow QueuedWork's camelCase."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from shopfloor.api.agentfactory.wire import queued_work
from shopfloor.api.envelope import has_nul, json_problem
from shopfloor.api.timefmt import iso
from shopfloor.store.records import (
    RegistrationTokenRecord,
    SessionEvent,
    SessionRecord,
    WorkerRecord,
)

Text = StrictStr
MetadataKey = Annotated[Text, StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[Text, StringConstraints(max_length=512)]


class RequestBody(BaseModel):
    """A request body: unknown fields are refused, and so is NUL in any string (PostgreSQL
    can store it in no text column, so it is refused here rather than failing in the store),
    and whatever `json_problem` finds (too deep, an integer beyond int64, NaN)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        problem = json_problem(value, nul_ok=True) if isinstance(value, dict) else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if has_nul(value):
            raise ValueError("must not contain the NUL character")
        return value


ShortText = Annotated[Text, StringConstraints(min_length=1, max_length=200)]
EnvName = Annotated[Text, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
EnvValue = Annotated[Text, StringConstraints(max_length=8192)]
MAX_OBJECT_BYTES = 64 * 1024  # kits, provider config, model profile: each at most this as JSON


def _bounded_object(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value)) > MAX_OBJECT_BYTES:
        raise ValueError(f"must be at most {MAX_OBJECT_BYTES} bytes as JSON")
    return value


BoundedObject = Annotated[dict[str, Any], AfterValidator(_bounded_object)]


class Resources(RequestBody):
    vCpu: StrictFloat | StrictInt | None = Field(None, gt=0, le=1024)
    memoryMb: StrictInt | None = Field(None, gt=0, le=16 * 1024 * 1024)


class ResolvedProfile(RequestBody):
    """The agent a Go daemon runs for the session."""

    provider: ShortText | None = None
    runner: ShortText | None = None
    model: ShortText | None = None
    effort: ShortText | None = None
    credentialId: ShortText | None = None
    providerConfig: BoundedObject | None = None


class ModelProfile(BaseModel):
    """A model profile: `id`, `providerId`, `model`, and whatever else the daemon reads."""

    model_config = ConfigDict(extra="allow")

    id: ShortText | None = None
    providerId: ShortText | None = None
    model: ShortText | None = None

    @model_validator(mode="after")
    def _bounded(self) -> ModelProfile:
        _bounded_object(self.model_dump())
        return self


class DispatchFields(RequestBody):
    """What a poll work item carries beyond the issue and prompt (the seed's poll item and
    the Go daemon's PollWorkItem), delivered under these names when set."""

    sourceSessionId: ShortText | None = Field(None, description="The session that spawned this one")
    providerSessionId: ShortText | None = Field(
        None, description="A provider session for the worker to resume"
    )
    kits: BoundedObject | None = Field(None, description="Kit configuration (at most 64 KiB)")
    ref: ShortText | None = Field(None, description="Git ref to check out")
    branch: ShortText | None = Field(None, description="Branch to work on")
    env: dict[EnvName, EnvValue] | None = Field(
        None, max_length=200, description="Environment variables for the agent"
    )
    maxDurationSeconds: StrictInt | None = Field(None, ge=1, le=7 * 24 * 3600)
    resources: Resources | None = None
    resolvedProfile: ResolvedProfile | None = None
    modelProfile: ModelProfile | None = None
    mentionContext: Text | None = Field(None, max_length=100_000)
    parentContext: Text | None = Field(None, max_length=100_000)
    stagePrompt: Text | None = Field(None, max_length=100_000)
    stageId: ShortText | None = None
    stageBudget: BoundedObject | StrictInt | StrictFloat | None = Field(
        None, description="A number, or an object of named limits"
    )
    stageLifecycle: ShortText | None = None
    stageSourceEventId: ShortText | None = None

    def work_item_fields(self) -> dict[str, Any]:
        """The fields a poll delivers as they are (providerSessionId has a column)."""
        given = self.model_dump(exclude_none=True, exclude={"providerSessionId"})
        return {k: v for k, v in given.items() if k in DispatchFields.model_fields}


class SessionCreate(DispatchFields):
    sessionId: Text | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Optional caller-chosen id; generated if absent",
    )
    issueId: Text | None = Field(None, min_length=1, max_length=200)
    issueIdentifier: Text | None = Field(
        None, min_length=1, max_length=200, description="Human key such as ENG-1"
    )
    title: Text | None = None
    description: Text | None = None
    prompt: Text | None = None
    workType: Text | None = Field(
        None, min_length=1, max_length=64, description="research, development, qa, …"
    )
    priority: StrictInt | None = Field(
        None, ge=1, le=9, description="1 runs first; default by work type"
    )
    projectName: Text | None = Field(None, min_length=1, max_length=200)
    repository: Text | None = None
    agentId: Text | None = Field(None, min_length=1, max_length=200)
    labels: list[Text] | None = Field(
        None, max_length=50, description="Issue labels the issue-tracker proxy reports"
    )
    environmentId: Text | None = Field(
        None,
        pattern=r"^env_[0-9a-f]{32}$",
        description="Queue the session in this environment: it becomes a work item there",
    )
    metadata: dict[MetadataKey, MetadataValue] | None = Field(
        None, max_length=16, description="String map, shown as the work item's metadata"
    )


class StatusChange(BaseModel):
    at: str
    status: str | None
    workerId: str | None
    reason: str | None

    @classmethod
    def of(cls, ev: SessionEvent) -> StatusChange:
        return cls(at=iso(ev.at) or "", status=ev.status, workerId=ev.worker_id, reason=ev.reason)


class SessionView(BaseModel):
    sessionId: str
    status: str
    priority: int
    queue: str
    projectName: str | None
    issueId: str | None
    issueIdentifier: str | None
    title: str | None
    description: str | None
    prompt: str | None
    workType: str | None
    repository: str | None
    agentId: str | None
    workerId: str | None
    leaseEpoch: int
    providerSessionId: str | None
    worktreePath: str | None
    totalCostUsd: float | None
    inputTokens: int | None
    outputTokens: int | None
    error: str | None
    queuedAt: str
    createdAt: str
    updatedAt: str
    claimedAt: str | None
    environmentId: str | None = None
    metadata: dict[str, str] | None = None
    workItem: dict[str, Any] = Field(
        description="The AgentFactory work item a worker's poll receives for this session"
    )
    history: list[StatusChange] | None = None

    @classmethod
    def of(cls, s: SessionRecord, history: list[SessionEvent] | None = None) -> SessionView:
        return cls(
            sessionId=s.id,
            status=s.status,
            priority=s.priority,
            queue=s.queue,
            projectName=s.project,
            issueId=s.issue_id,
            issueIdentifier=s.issue_identifier,
            title=s.title,
            description=s.description,
            prompt=s.prompt,
            workType=s.work_type,
            repository=s.repository,
            agentId=s.agent_id,
            workerId=s.worker_id,
            leaseEpoch=s.lease_epoch,
            providerSessionId=s.provider_session_id,
            worktreePath=s.worktree_path,
            totalCostUsd=s.total_cost_usd,
            inputTokens=s.input_tokens,
            outputTokens=s.output_tokens,
            error=s.error_message,
            queuedAt=iso(s.queued_at) or "",
            createdAt=iso(s.created_at) or "",
            updatedAt=iso(s.updated_at) or "",
            claimedAt=iso(s.claimed_at),
            environmentId=s.queue if s.queue.startswith("env_") else None,
            metadata=s.metadata,
            workItem=queued_work(s),
            history=None if history is None else [StatusChange.of(e) for e in history],
        )


class SessionPage(BaseModel):
    sessions: list[SessionView]
    nextCursor: str | None = Field(description="Pass as `before` to read the next page")


class WorkerView(BaseModel):
    workerId: str
    protocol: str
    hostname: str
    capacity: int
    status: str
    activeCount: int
    projects: list[str] | None
    version: str | None
    registeredAt: str
    lastHeartbeatAt: str

    @classmethod
    def of(cls, w: WorkerRecord) -> WorkerView:
        return cls(
            workerId=w.id,
            protocol=w.protocol,
            hostname=w.hostname,
            capacity=w.capacity,
            status=w.status,
            activeCount=w.active_count,
            projects=w.projects,
            version=w.version,
            registeredAt=iso(w.registered_at) or "",
            lastHeartbeatAt=iso(w.last_heartbeat_at) or "",
        )


class TokenCreate(RequestBody):
    project: Text | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Scope to one project (rsp_live_…); org-wide otherwise",
    )
    org: Text | None = Field(None, min_length=1, max_length=200)
    label: Text | None = Field(None, max_length=200)


class TokenView(BaseModel):
    id: str
    kind: str
    project: str | None
    org: str | None
    label: str | None
    createdAt: str
    revokedAt: str | None
    token: str | None = Field(None, description="The secret, shown only in the create reply")

    @classmethod
    def of(cls, r: RegistrationTokenRecord, clear: str | None = None) -> TokenView:
        return cls(
            id=r.id,
            kind=r.kind,
            project=r.project,
            org=r.org,
            label=r.label,
            createdAt=iso(r.created_at) or "",
            revokedAt=iso(r.revoked_at),
            token=clear,
        )


def validation_message(errors: list[Any]) -> str:
    """The first pydantic error as `field: message`."""
    if not errors:
        return "Invalid request"
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    if first.get("type") == "json_invalid":
        return "Invalid JSON body"
    if not loc and first.get("type") == "value_error":  # a whole-body check (RequestBody)
        return str(first.get("ctx", {}).get("error", first.get("msg")))
    if not loc:
        return "Request body must be a JSON object"
    return f"{'.'.join(loc)}: {first.get('msg', 'invalid')}"
