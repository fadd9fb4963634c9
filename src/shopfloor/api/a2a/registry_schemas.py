"""OpenAPI models of the A2A registry routes (the document only: the routes check their
bodies themselves, naming the field)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class A2aAgentRegister(BaseModel):
    url: str = Field(max_length=2048, description="The agent's base URL or its card's URL")


class A2aAgentTrust(BaseModel):
    trustLevel: Literal["external", "trusted", "internal", "system"]


class A2aCard(BaseModel):
    name: str
    url: str
    version: str | None
    description: str | None
    skills: list[dict[str, Any]]


class A2aAgent(BaseModel):
    id: str
    orgId: str
    url: str
    trustLevel: str
    card: A2aCard
    lastFetchedAt: str | None
    reachable: bool
    createdAt: str | None
    updatedAt: str | None


class A2aAgentReply(BaseModel):
    agent: A2aAgent


class A2aAgentList(BaseModel):
    agents: list[A2aAgent]


class A2aAgentDeleted(BaseModel):
    deleted: bool
    id: str


class A2aText(BaseModel):
    text: str


class A2aDispatch(BaseModel):
    dispatchId: str
    agentId: str
    agentName: str
    skillId: str
    taskId: str | None
    status: str
    dispatchType: str
    sessionId: str | None
    input: A2aText
    output: A2aText | None
    dispatchedAt: str | None
    completedAt: str | None
    costTokens: int | None


class A2aDispatchList(BaseModel):
    dispatches: list[A2aDispatch]
    nextCursor: str | None
