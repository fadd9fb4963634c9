"""The public API's aggregates (rensei-platform.md §2.7, §2.8): the provider router's
posteriors and recent decisions, and per-phase cycle time, cost and rework. `sessions:read`;
the organisation's own figures only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from shopfloor.api.envelope import ApiError
from shopfloor.api.openapi import ok
from shopfloor.api.public.errors import platform_errors
from shopfloor.api.public.routes import PUBLIC_API, reader
from shopfloor.api.state import services
from shopfloor.api.timefmt import iso
from shopfloor.service.actors import Principal
from shopfloor.service.metrics import DEFAULT_RANGE, MAX_SESSIONS, TIME_RANGES, phase_metrics
from shopfloor.service.router import EXPLORATION_RATE, confidence, expected_reward

router = APIRouter(
    prefix="/api/public", tags=[PUBLIC_API], responses=platform_errors(400, 401, 403, 413)
)
Reader = Annotated[Principal, Depends(reader)]
MAX_LIMIT = 200
DAY_MS = 86_400_000


class PosteriorView(BaseModel):
    provider: str
    workType: str
    alpha: float
    beta: float
    expectedReward: float
    confidence: float
    totalObservations: int
    avgCostUsd: float


class Decision(BaseModel):
    timestamp: int
    provider: str
    workType: str
    reward: float
    taskCompleted: bool | None
    confidence: float | None
    explorationReason: str | None = None


class RoutingSummary(BaseModel):
    totalObservations: int
    routingEnabled: bool
    explorationRate: float
    avgConfidence: float
    survivalRewardCount: int


class RoutingMetrics(BaseModel):
    posteriors: list[PosteriorView]
    recentDecisions: list[Decision]
    nextCursor: str | None = None
    summary: RoutingSummary
    timestamp: str


class PhaseView(BaseModel):
    avgCycleTimeMs: float
    avgCostUsd: float
    avgAttempts: float
    totalRecords: int


class PhaseMetricsReply(BaseModel):
    timeRange: str
    phases: dict[str, PhaseView]
    reworkRate: float
    escalationDistribution: dict[str, int]
    issueCount: int
    timestamp: str


def _when(raw: str | None, name: str) -> int | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(raw)
        return int(moment.timestamp() * 1000)
    except (ValueError, OverflowError, OSError):
        raise ApiError(400, f'Invalid "{name}" parameter: must be a valid ISO-8601 date') from None


def _limit(raw: str | None) -> int:
    if raw is None:
        return 50
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, 'Invalid "limit" parameter: must be a positive integer')
    return min(int(raw), MAX_LIMIT)


@router.get("/routing-metrics", response_model=None, responses=ok(RoutingMetrics))
async def routing_metrics(
    request: Request,
    who: Reader,
    from_: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    to: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[str | None, Query(max_length=12, description="1-200, default 50")] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> RoutingMetrics:
    since, until, page = _when(from_, "from"), _when(to, "to"), _limit(limit)
    store = services(request).dispatcher.store
    arms = await store.posteriors(who.org_id)
    found = await store.observations(
        who.org_id, since=since, until=until, before_id=cursor, limit=page
    )
    if who.projects is not None:
        found = [o for o in found if o.project in who.projects]
    total = sum(p.total_observations for p in arms)
    return RoutingMetrics(
        posteriors=[
            PosteriorView(
                provider=p.provider,
                workType=p.work_type,
                alpha=round(p.alpha, 4),
                beta=round(p.beta, 4),
                expectedReward=round(expected_reward(p), 4),
                confidence=round(confidence(p), 4),
                totalObservations=p.total_observations,
                avgCostUsd=round(p.avg_cost_usd, 4),
            )
            for p in arms
        ],
        recentDecisions=[
            Decision(
                timestamp=o.at,
                provider=o.provider,
                workType=o.work_type,
                reward=round(o.reward, 4),
                taskCompleted=o.task_completed,
                confidence=o.confidence,
                explorationReason=o.exploration_reason,
            )
            for o in found
        ],
        nextCursor=found[-1].id if len(found) == page else None,
        summary=RoutingSummary(
            totalObservations=total,
            routingEnabled=total > 0,
            explorationRate=EXPLORATION_RATE,
            avgConfidence=round(sum(confidence(p) for p in arms) / len(arms), 4) if arms else 0,
            survivalRewardCount=0,
        ),
        timestamp=iso(services(request).clock.now_ms()) or "",
    )


@router.get("/phase-metrics", response_model=None, responses=ok(PhaseMetricsReply))
async def get_phase_metrics(
    request: Request,
    who: Reader,
    timeRange: Annotated[str | None, Query(max_length=8, description="7d, 30d or 90d")] = None,
) -> PhaseMetricsReply:
    """Per work type, over the sessions of the range that ended (an unknown range is 30d)."""
    chosen = timeRange if timeRange in TIME_RANGES else DEFAULT_RANGE
    svc = services(request)
    now = svc.clock.now_ms()
    since = now - TIME_RANGES[chosen] * DAY_MS
    ended = await svc.dispatcher.store.ended_sessions(who.org_id, who.projects, since, MAX_SESSIONS)
    found = phase_metrics(ended)
    return PhaseMetricsReply(
        timeRange=chosen,
        phases={
            name: PhaseView(
                avgCycleTimeMs=round(p.avg_cycle_time_ms, 1),
                avgCostUsd=round(p.avg_cost_usd, 6),
                avgAttempts=round(p.avg_attempts, 4),
                totalRecords=p.total_records,
            )
            for name, p in found.phases.items()
        },
        reworkRate=round(found.rework_rate, 4),
        escalationDistribution=found.escalations,
        issueCount=found.issue_count,
        timestamp=iso(now) or "",
    )
