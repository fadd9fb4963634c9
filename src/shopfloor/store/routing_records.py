"""Records of the daemon side of the platform: the provider router's Beta posterior per
(organisation, provider, work type) and the observations that moved it (rensei-platform.md
§1.3, §2.7), and the mutations queued for a daemon host (§1.9)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MUTATION_PENDING = "pending"
MUTATION_DELIVERED = "delivered"
MUTATION_CANCELLED = "cancelled"


@dataclass(frozen=True)
class Mutation:
    id: str
    org_id: str
    worker_id: str  # the daemon host (workerHostId)
    op: str
    status: str
    requested_by: str
    created_at: int
    params: dict[str, Any] = field(default_factory=dict)
    delivered_at: int | None = None
    cancelled_at: int | None = None


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
