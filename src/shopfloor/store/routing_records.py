"""Records of the provider router: a Beta posterior per (organisation, provider, work type)
and the observations that moved it (rensei-platform.md §1.3, §2.7)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Posterior:
    org_id: str
    provider: str
    work_type: str
    alpha: float = 1.0
    beta: float = 1.0
    total_observations: int = 0
    avg_reward: float = 0.0
    avg_cost_usd: float = 0.0
    updated_at: int = 0


@dataclass(frozen=True)
class Observation:
    id: str
    org_id: str
    session_id: str
    provider: str
    work_type: str
    reward: float
    at: int
    project: str | None = None
    task_completed: bool | None = None
    pr_created: bool | None = None
    qa_result: str | None = None
    cost_usd: float | None = None
    wall_clock_ms: int | None = None
    confidence: float | None = None
    exploration_reason: str | None = None
