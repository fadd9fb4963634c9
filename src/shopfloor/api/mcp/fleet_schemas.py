"""OpenAPI models of the fleet routes under /api/mcp (the document only: the routes check
their bodies with api/mcp/fleet_ops.py, whose messages name the field)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SubmitTask(BaseModel):
    issueId: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=100_000)
    workType: str | None = Field(default=None, max_length=64)
    priority: int = Field(default=3, ge=1, le=5)
    projectName: str | None = Field(default=None, max_length=200)


class TaskRef(BaseModel):
    taskId: str = Field(min_length=1, max_length=200)


class ForwardPrompt(BaseModel):
    taskId: str = Field(min_length=1, max_length=200)
    message: str = Field(min_length=1, max_length=100_000)


class TaskSubmitted(BaseModel):
    submitted: bool
    taskId: str
    issueId: str | None
    status: str
    priority: int
    workType: str | None


class TaskStopped(BaseModel):
    stopped: bool
    taskId: str
    issueId: str | None
    previousStatus: str
    newStatus: str


class PromptForwarded(BaseModel):
    forwarded: bool
    promptId: str
    taskId: str
    issueId: str | None
    sessionStatus: str


class FleetCostReport(BaseModel):
    totalSessions: int
    sessionsWithCostData: int
    totalCostUsd: float
    totalInputTokens: int
    totalOutputTokens: int


class FleetTask(BaseModel):
    taskId: str
    issueId: str | None
    status: str
    workType: str | None
    priority: int
    projectName: str | None
    workerId: str | None
    createdAt: str | None
    updatedAt: str | None
    totalCostUsd: float | None
    inputTokens: int | None
    outputTokens: int | None
    errorMessage: str | None


class FleetList(BaseModel):
    total: int
    returned: int
    sessions: list[FleetTask]
