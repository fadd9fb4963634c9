"""OpenAPI schemas of the AgentFactory protocol: the bodies its routes read and the replies they
send (wire.py builds them). The request models describe a body for the document only: the
routes check their bodies themselves, with the error strings the workers see."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from shopfloor.api.openapi import (
    REGISTRATION_TOKEN,
    RUNTIME_TOKEN,
    WORKER_KEY,
    tag,
)

WORKER_PROTOCOL = tag(
    "AgentFactory worker protocol",
    "The routes the AgentFactory/Rensei worker daemons (`af-worker`, the Go `af daemon`) call "
    "in a loop: register, heartbeat, poll, claim, report status. Credentials: the static "
    "worker key or a runtime JWT (a JWT acts only for its own worker); registering takes the "
    'worker key or a registration token. Errors are `{"error", "message"}`.',
    WORKER_KEY,
    RUNTIME_TOKEN,
)
SESSION_CHANNEL = tag(
    "AgentFactory session channel",
    "What a running session posts (activity, progress, completion, tool errors), its issue "
    "lock, inbox acknowledgements, file reservations and crash-recovery packets. Credentials: "
    'the static worker key or a runtime JWT. Errors are `{"error", "message"}`.',
    WORKER_KEY,
    RUNTIME_TOKEN,
)
ISSUE_PROXY = tag(
    "AgentFactory issue-tracker proxy",
    "The issue-tracker calls of a worker without its own tracker key, answered from "
    "shopfloor's issue records. Credentials: the static worker key or a runtime JWT. Replies "
    'are `{"success": true, "data"}` or `{"success": false, "error": {"code", "message", '
    '"retryable"}}`.',
    WORKER_KEY,
    RUNTIME_TOKEN,
)
REGISTER_SECURITY = (WORKER_KEY, REGISTRATION_TOKEN)
REFRESH_SECURITY = (REGISTRATION_TOKEN, RUNTIME_TOKEN)

REPORTABLE = Literal["running", "finalizing", "completed", "failed", "stopped"]
MAX_CAPACITY = 10_000  # sessions one worker may hold at once
MAX_CAPABILITIES = 32
CAPABILITY = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def worker_id() -> Any:
    return Field(min_length=1, description="The acting worker (a runtime JWT's own)")


# -- worker protocol: requests --


class RegisterRequest(BaseModel):
    hostname: str = Field(min_length=1)
    capacity: int = Field(
        ge=1, le=MAX_CAPACITY, description="How many sessions the worker runs at once"
    )
    version: str | None = None
    projects: list[str] | None = Field(None, description="Projects the worker serves")
    machineId: str | None = None
    capabilities: list[str] | None = Field(
        None,
        max_length=MAX_CAPABILITIES,
        description="What it can do beyond sessions: `code-survival-scan` receives batchWork",
    )


class HeartbeatRequest(BaseModel):
    activeCount: float = Field(ge=0, le=MAX_CAPACITY, description="Sessions the worker is running")


class ClaimRequest(BaseModel):
    workerId: str = worker_id()


class StatusError(BaseModel):
    message: str | None = None


class StatusRequest(BaseModel):
    workerId: str = worker_id()
    status: REPORTABLE
    providerSessionId: str | None = None
    worktreePath: str | None = None
    error: str | StatusError | None = Field(None, description="Why the session failed")
    totalCostUsd: float | None = Field(None, ge=0)
    inputTokens: int | None = Field(None, ge=0)
    outputTokens: int | None = Field(None, ge=0)


class NackRequest(BaseModel):
    workerId: str = worker_id()
    reason: str | None = None


class TransferRequest(BaseModel):
    newWorkerId: str = Field(min_length=1, description="The caller")
    oldWorkerId: str = Field(min_length=1, description="The current holder")


# -- worker protocol: replies --


class RegisterReply(BaseModel):
    workerId: str
    heartbeatInterval: int = Field(description="Milliseconds")
    pollInterval: int = Field(description="Milliseconds")
    runtimeToken: str | None = Field(description="Set when registered with a registration token")
    runtimeTokenExpiresAt: str | None


class RefreshReply(BaseModel):
    runtimeToken: str
    runtimeTokenExpiresAt: str
    heartbeatInterval: int
    pollInterval: int


class ConfigReply(BaseModel):
    projects: list[str]


class HeartbeatReply(BaseModel):
    acknowledged: bool
    serverTime: str
    pendingWorkCount: int
    mutations: list[dict[str, Any]] | None = Field(
        None,
        description="Daemon mutations queued for this host, delivered now, once (the daemon "
        "v1 heartbeat's objects); absent when there are none",
    )


class QueuedWork(BaseModel):
    """A work item handed to a worker; may carry more fields the session was queued with."""

    sessionId: str
    issueId: str
    issueIdentifier: str
    priority: int
    queuedAt: int = Field(description="Epoch milliseconds")
    prompt: str | None = None
    providerSessionId: str | None = Field(None, description="Present when the worker resumes")
    workType: str | None = None
    projectName: str | None = None
    repository: str | None = None
    agentId: str | None = None
    title: str | None = None
    body: str | None = None


class WorkerInboxMessage(BaseModel):
    id: str
    type: str = Field(description="stop, directive, nudge or hook-result")
    sessionId: str
    payload: str
    userId: str | None = None
    userName: str | None = None
    createdAt: int
    lane: Literal["urgent", "normal"]


class GitCredential(BaseModel):
    token: str = Field(description="Short-lived: use it only to clone and push this repository")
    cloneUrl: str
    expiresAt: str | None = Field(description="When the token stops working (ISO 8601)")


class BatchWorkItem(BaseModel):
    id: str
    kind: str
    capability: str
    payload: dict[str, Any]
    leaseEpoch: int = Field(description="Name it when reporting the item's result")
    leaseExpiresAt: str
    attempts: int


class PollReply(BaseModel):
    work: list[QueuedWork]
    inboxMessages: dict[str, list[WorkerInboxMessage]] = Field(description="By session id")
    hasInboxMessages: bool
    preClaimed: bool
    claimedSessionIds: list[str]
    gitCredentials: list[GitCredential] | None = Field(
        None, description="Runtime-JWT callers: for the repositories of the sessions claimed"
    )
    batchWork: list[BatchWorkItem] | None = Field(
        None, description="Runtime-JWT callers registered with the item's capability"
    )


class BatchResultRequest(BaseModel):
    leaseEpoch: int = Field(ge=1, description="The leaseEpoch the item came with")
    status: Literal["completed", "failed"]
    result: dict[str, Any] | None = Field(None, description="At most 256 KiB as JSON")


class BatchResultReply(BaseModel):
    id: str
    status: Literal["completed", "failed"]
    acknowledged: bool


class DeregisterReply(BaseModel):
    deregistered: bool
    unclaimedSessions: list[str] = Field(description="Sessions put back in the queue")


class SessionState(BaseModel):
    linearSessionId: str
    sessionId: str
    issueId: str
    providerSessionId: str | None
    worktreePath: str
    status: str
    createdAt: int
    updatedAt: int
    queuedAt: int
    priority: int
    issueIdentifier: str | None = None
    workerId: str | None = None
    claimedAt: int | None = None
    promptContext: str | None = None
    workType: str | None = None
    agentId: str | None = None
    projectName: str | None = None
    totalCostUsd: float | None = None
    inputTokens: int | None = None
    outputTokens: int | None = None


class ClaimReply(BaseModel):
    claimed: bool
    reason: str | None = Field(None, description="Why not, when not claimed")
    session: SessionState | None = None
    work: QueuedWork | None = None


class StatusReply(BaseModel):
    updated: bool
    session: SessionState


class NackReply(BaseModel):
    nacked: bool
    sessionId: str
    requeued: bool


class TransferReply(BaseModel):
    transferred: bool
    reason: str | None = None
    session: SessionState | None = None


# -- session channel: requests --


class LockRefreshRequest(BaseModel):
    workerId: str = worker_id()
    issueId: str = Field(min_length=1)


class ProgressRequest(BaseModel):
    workerId: str = worker_id()
    milestone: str | None = Field(None, description="This, message, or both")
    message: str | None = None


class Activity(BaseModel):
    type: str = Field(min_length=1)
    content: str


class ActivityRequest(BaseModel):
    workerId: str = worker_id()
    activity: Activity


class CompletionRequest(BaseModel):
    summary: str = Field(min_length=1)
    workerId: str | None = None


class ExternalUrl(BaseModel):
    label: str
    url: str


class ExternalUrlsRequest(BaseModel):
    externalUrls: list[ExternalUrl]
    workerId: str | None = None


class ToolErrorRequest(BaseModel):
    toolName: str = Field(min_length=1)
    errorMessage: str = Field(min_length=1)
    context: dict[str, Any] | None = None
    workerId: str | None = None


class SecurityScanRequest(BaseModel):
    event: dict[str, Any]
    workerId: str | None = None


class InboxAckRequest(BaseModel):
    messageId: str = Field(min_length=1)
    lane: Literal["urgent", "normal"]
    workerId: str | None = None


class FilePathsRequest(BaseModel):
    filePaths: list[str] = Field(min_length=1, max_length=1000)
    reason: str | None = Field(None, description="Only for files/reserve")
    workerId: str | None = None


class WorkerIdRequest(BaseModel):
    workerId: str | None = None


class RecoveryRequest(BaseModel):
    reason: str | None = None
    workerId: str | None = None


# -- session channel: replies --


class LockRefreshReply(BaseModel):
    refreshed: bool
    stop: bool | None = Field(None, description="true: the session was asked to stop")


class ProgressReply(BaseModel):
    posted: bool
    milestone: str | None


class ActivityReply(BaseModel):
    forwarded: bool


class CompletionReply(BaseModel):
    posted: bool
    partsPosted: int
    totalParts: int


class ExternalUrlsReply(BaseModel):
    updated: bool
    externalUrls: list[ExternalUrl]


class ToolErrorReply(BaseModel):
    created: bool
    stored: bool
    reason: str | None


class StoredReply(BaseModel):
    stored: bool


class InboxAckReply(BaseModel):
    acknowledged: bool


class FileHolder(BaseModel):
    sessionId: str
    repoId: str
    filePath: str
    reservedAt: int
    reason: str | None = None


class FileConflict(BaseModel):
    filePath: str
    heldBy: FileHolder


class ReserveReply(BaseModel):
    reserved: list[str]
    conflicts: list[FileConflict]


class ConflictsReply(BaseModel):
    conflicts: list[FileConflict]


class ReleaseReply(BaseModel):
    released: int


class RecoveryPacket(BaseModel):
    """A snapshot of a crashed session, with whatever it recorded."""

    packetId: str
    attempt: int
    createdAt: int


class RecoveryLatestReply(BaseModel):
    sessionId: str
    found: bool
    packet: RecoveryPacket | None


class RecoveryStoredReply(BaseModel):
    stored: bool
    packet: RecoveryPacket


class RecoveryChainReply(BaseModel):
    sessionId: str
    packets: list[RecoveryPacket] = Field(description="Oldest first: one per crash")


# -- issue-tracker proxy --


class ProxyRequest(BaseModel):
    method: str = Field(description="An issue-tracker method, e.g. getIssue or createComment")
    args: list[Any] = Field(default_factory=list)


class ProxySuccess(BaseModel):
    success: Literal[True]
    data: Any


class ProxyErrorDetail(BaseModel):
    code: str = Field(description="AUTH_ERROR, INVALID_JSON, INVALID_METHOD, INVALID_ARGS, …")
    message: str
    retryable: bool


class ProxyFailure(BaseModel):
    success: Literal[False]
    error: ProxyErrorDetail
