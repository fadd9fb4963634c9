"""The provider router's worker side (rensei-platform.md §1.3, §1.4): a runner reports a
finished session's reward and asks which provider to start one with. Both answer 200 on every
path but bad input and auth, so the router never fails a worker's flow: a reward that could
not be stored is `{"recorded": false}`, a selection that cannot be made is
`{"selectedProvider": null, "source": <why>}` and the runner keeps its own provider."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from shopfloor.api.agentfactory import schemas
from shopfloor.api.agentfactory.auth import WorkerCaller, worker_caller
from shopfloor.api.openapi import af_errors, ok
from shopfloor.api.operator.schemas import RequestBody
from shopfloor.api.state import services
from shopfloor.service.router import Feedback, Router

router = APIRouter(tags=[schemas.SESSION_CHANNEL], responses=af_errors(400, 401, 403, 404, 413))
Caller = Annotated[WorkerCaller, Depends(worker_caller)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=100)]
Number = StrictFloat  # an integer is accepted too; a string is not


class RoutingFeedback(RequestBody):
    """The reward of a finished session (other fields of the runner's observation are kept
    when given)."""

    model_config = ConfigDict(extra="ignore")

    provider: Name
    workType: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    reward: Number = Field(description="0 to 1 (clamped)", ge=-1e9, le=1e9)
    taskCompleted: StrictBool | None = None
    prCreated: StrictBool | None = None
    qaResult: Literal["passed", "failed", "unknown"] | None = None
    totalCostUsd: Number | None = Field(None, ge=0, le=1e9)
    wallClockMs: StrictInt | None = Field(None, ge=0, le=2**53)
    confidence: Number | None = Field(None, ge=0, le=1)
    explorationReason: Annotated[StrictStr, Field(max_length=64)] | None = None


class FeedbackRecorded(BaseModel):
    recorded: bool = Field(description="False if it could not be stored (still a 200)")


class RoutingSelect(RequestBody):
    model_config = ConfigDict(extra="ignore")

    workType: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    candidates: list[Name] = Field(max_length=50, description="The providers it may run")


class RoutingChoice(BaseModel):
    selectedProvider: str | None
    source: str = Field(description="thompson, exploration, disabled, no-candidates or error")
    expectedReward: float
    confidence: float


def _router(request: Request) -> Router:
    svc = services(request)
    return Router(svc.dispatcher.store, svc.clock, enabled=svc.settings.routing_selector_enabled)


@router.post(
    "/api/sessions/{session_id}/routing-feedback",
    response_model=None,
    responses=ok(FeedbackRecorded),
)
async def routing_feedback(
    session_id: str, body: RoutingFeedback, request: Request, caller: Caller
) -> FeedbackRecorded:
    session = await services(request).dispatcher.visible_session(session_id, caller.actor)
    recorded = await _router(request).observe(
        session,
        Feedback(
            provider=body.provider,
            work_type=body.workType,
            reward=float(body.reward),
            task_completed=body.taskCompleted,
            pr_created=body.prCreated,
            qa_result=body.qaResult,
            cost_usd=None if body.totalCostUsd is None else float(body.totalCostUsd),
            wall_clock_ms=body.wallClockMs,
            confidence=None if body.confidence is None else float(body.confidence),
            exploration_reason=body.explorationReason,
        ),
    )
    return FeedbackRecorded(recorded=recorded)


@router.post(
    "/api/sessions/{session_id}/routing-select",
    response_model=None,
    responses=ok(RoutingChoice),
)
async def routing_select(
    session_id: str, body: RoutingSelect, request: Request, caller: Caller
) -> RoutingChoice:
    session = await services(request).dispatcher.visible_session(session_id, caller.actor)
    choice = await _router(request).select(session, body.workType, list(body.candidates))
    return RoutingChoice(
        selectedProvider=choice.provider,
        source=choice.source,
        expectedReward=round(choice.expected_reward, 4),
        confidence=round(choice.confidence, 4),
    )
