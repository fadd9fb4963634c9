"""Records of agent memory: what a session remembered, and a recall's ranked hits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryRecord:
    """One remembered item. `org_id` and `project` are its tenant: only sessions of the same
    organisation and project ever recall it. `scope` narrows it within the project (a
    repository, a topic); "" when none was given."""

    id: str
    org_id: str
    project: str
    scope: str
    session_id: str
    agent_id: str | None
    content: str
    tags: list[str]
    source: str
    type: str
    created_at: int


@dataclass(frozen=True)
class MemoryQuery:
    org_id: str
    project: str
    words: list[str]  # the query's words; matched by any, ranked by the database's search
    scope: str | None = None
    limit: int = 10


@dataclass(frozen=True)
class MemoryHit:
    memory: MemoryRecord
    score: float  # higher is more relevant
