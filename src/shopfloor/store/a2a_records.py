"""Records of the A2A registry: remote agents and the dispatches made to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class A2aAgentRecord:
    id: str
    org_id: str
    url: str
    slug: str  # the card's name, lower-cased, non-alphanumerics as `_`: peer tools' prefix
    trust_level: str
    card: dict[str, Any]
    reachable: bool
    last_fetched_at: int
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class A2aDispatchRecord:
    id: str  # ordered by time (ids.py): the list's cursor
    org_id: str
    agent_id: str
    agent_name: str
    skill_id: str
    status: str  # pending | running | completed | failed
    dispatch_type: str  # explicit | transparent
    input_text: str
    dispatched_at: int
    task_id: str | None = None
    session_id: str | None = None
    output_text: str | None = None
    completed_at: int | None = None


@dataclass(frozen=True)
class DispatchFilter:
    org_id: str
    agent_id: str | None = None
    status: str | None = None
    since: int | None = None
    until: int | None = None
    before_id: str | None = None
    limit: int = 50
