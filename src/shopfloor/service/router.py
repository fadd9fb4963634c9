"""The provider router (rensei-platform.md §1.3, §1.4, §2.7): a multi-armed bandit over the
providers that may run a work type, one Beta posterior per (organisation, provider, work
type). A finished session's reward moves its arm (reward >= 0.5 adds it to alpha, else
1 - reward to beta); a starting session is routed by Thompson sampling over its candidates,
with a share of forced exploration. Off unless the operator turns it on: the runner then
keeps its own provider. Neither call may ever fail a worker's flow (best effort)."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass

from shopfloor.clock import Clock
from shopfloor.ids import uuid7_hex
from shopfloor.store import Store
from shopfloor.store.records import SessionRecord
from shopfloor.store.routing_records import Observation, Posterior

log = logging.getLogger("shopfloor.router")

EXPLORATION_RATE = 0.1


@dataclass(frozen=True)
class Feedback:
    provider: str
    work_type: str
    reward: float
    task_completed: bool | None = None
    pr_created: bool | None = None
    qa_result: str | None = None
    cost_usd: float | None = None
    wall_clock_ms: int | None = None
    confidence: float | None = None
    exploration_reason: str | None = None


@dataclass(frozen=True)
class Selection:
    provider: str | None
    source: str  # thompson, exploration, disabled, no-candidates, error
    expected_reward: float = 0.0
    confidence: float = 0.0


def expected_reward(p: Posterior) -> float:
    return p.alpha / (p.alpha + p.beta)


def confidence(p: Posterior) -> float:
    """1 - the posterior's standard deviation."""
    total = p.alpha + p.beta
    variance = p.alpha * p.beta / (total * total * (total + 1))
    return 1 - math.sqrt(variance)


def steps(reward: float) -> tuple[float, float]:
    return (reward, 0.0) if reward >= 0.5 else (0.0, 1 - reward)


class Router:
    def __init__(
        self, store: Store, clock: Clock, *, enabled: bool, rng: random.Random | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.enabled = enabled
        self.rng = rng or random.SystemRandom()

    async def observe(self, session: SessionRecord, feedback: Feedback) -> bool:
        """Record a finished session's reward; False (never an error) if it could not be."""
        reward = min(1.0, max(0.0, feedback.reward))
        observation = Observation(
            id=f"obs_{uuid7_hex()}",
            org_id=session.org_id,
            session_id=session.id,
            provider=feedback.provider,
            work_type=feedback.work_type,
            reward=reward,
            at=self.clock.now_ms(),
            project=session.project,
            task_completed=feedback.task_completed,
            pr_created=feedback.pr_created,
            qa_result=feedback.qa_result,
            cost_usd=feedback.cost_usd,
            wall_clock_ms=feedback.wall_clock_ms,
            confidence=feedback.confidence,
            exploration_reason=feedback.exploration_reason,
        )
        try:
            await self.store.record_observation(observation, *steps(reward))
        except Exception as exc:  # best effort: a worker's terminal flow must go on
            log.warning("could not record a routing observation for %s: %s", session.id, exc)
            return False
        return True

    async def select(
        self, session: SessionRecord, work_type: str, candidates: list[str]
    ) -> Selection:
        if not self.enabled:
            return Selection(None, "disabled")
        if not candidates:
            return Selection(None, "no-candidates")
        try:
            known = await self.store.posteriors(session.org_id, work_type, candidates)
        except Exception as exc:
            log.warning("routing-select fell back for %s: %s", session.id, exc)
            return Selection(None, "error")
        return self.sample(session.org_id, work_type, candidates, known)

    def sample(
        self, org_id: str, work_type: str, candidates: list[str], known: list[Posterior]
    ) -> Selection:
        """Thompson sampling: draw from each candidate's Beta, take the best draw (one draw
        in ten a uniformly random candidate, so no arm is starved of evidence)."""
        arms = {p.provider: p for p in known}
        posterior = {c: arms.get(c, Posterior(org_id, c, work_type)) for c in candidates}
        if self.rng.random() < EXPLORATION_RATE:
            chosen, source = self.rng.choice(candidates), "exploration"
        else:
            draws = {c: self.rng.betavariate(p.alpha, p.beta) for c, p in posterior.items()}
            chosen, source = max(draws, key=lambda c: draws[c]), "thompson"
        arm = posterior[chosen]
        return Selection(chosen, source, expected_reward(arm), confidence(arm))
