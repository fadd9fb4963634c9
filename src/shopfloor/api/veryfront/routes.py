"""Veryfront agent-workers protocol: `/agent-workers/*`, the durable-run routes a worker
writes through (`/conversations/{c}/runs/*`, `/runs/{run}/complete`). The user side (runs,
conversations, input requests) is in run_routes and conversation_routes.

Shapes follow shared/protocols/veryfront-and-environments.md part 1, sessions-and-veryfront-
runs.md part B, and what the npm client `veryfront` (createExternalAgentWorkerClient, the
durable-run helpers, `veryfront/runs`) parses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from shopfloor.api.envelope import ApiError
from shopfloor.api.fastlane import hot
from shopfloor.api.limits import MIB, body_limit
from shopfloor.api.openapi import errors, json_body, ok, security
from shopfloor.api.veryfront import parse
from shopfloor.api.veryfront import schemas as vs
from shopfloor.api.veryfront.auth import (
    VfCaller,
    named_project,
    require_project,
    run_service,
    vf_caller,
)
from shopfloor.api.veryfront.wire import (
    TERMINAL_FROM_WIRE,
    run_status,
    run_view,
    worker_session_view,
    worker_view,
)
from shopfloor.service.runs import (
    SAFE_INTEGER,
    AgentWorker,
    Completion,
    RunService,
)

router = APIRouter(tags=[vs.VERYFRONT], responses=errors(vs.VeryfrontError, 400, 401, 403, 413))
Caller = Annotated[VfCaller, Depends(vf_caller)]

MAX_EVENTS = 100
MAX_EVENT_BYTES = 240 * 1024
MAX_APPEND_BYTES = 10 * MIB


def _errors(*codes: int) -> dict[int | str, Any]:
    return errors(vs.VeryfrontError, *codes)


async def _worker(runs: RunService, worker_id: str, caller: VfCaller) -> AgentWorker:
    agent = await runs.worker(parse.uuid_param(worker_id, "worker_id"))
    caller.require_worker(agent)
    return agent


# -- workers --


@router.post(
    "/agent-workers/projects/{project_reference}/workers",
    status_code=201,
    responses=ok(vs.WorkerRegistered, 201),
    openapi_extra=json_body(vs.WorkerRegistration) | security(*vs.PROJECT_TOKENS),
)
async def register_worker(project_reference: str, request: Request, caller: Caller) -> JSONResponse:
    if caller.worker is not None:
        raise ApiError(403, "Register a worker with a project token")
    reference = parse.project_reference(project_reference)
    org = await require_project(request, caller, named_project(caller, reference))
    body = parse.parse_json(await request.body())
    kind = parse.pattern_field(body, "implementation_kind")
    key = parse.pattern_field(body, "worker_key")
    impl_name = parse.opt_text(body, "implementation_display_name", 128)
    display_name = parse.opt_text(body, "display_name", 128)
    metadata = parse.opt_object(body, "metadata")
    registration = await run_service(request).register(
        project_reference=reference,
        implementation_kind=kind,
        worker_key=key,
        implementation_display_name=impl_name,
        display_name=display_name,
        metadata=metadata,
        registration_id=caller.registration.id if caller.registration else None,
        actor=caller.actor,
        org_id=org,
    )
    return JSONResponse(
        {"worker": worker_view(registration.worker), "token": registration.token},
        status_code=201,
    )


@router.post(
    "/agent-workers/workers/{worker_id}/heartbeat",
    response_model=None,
    responses=ok(vs.WorkerHeartbeatReply) | _errors(404),
)
async def heartbeat(worker_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    runs = run_service(request)
    agent = await _worker(runs, worker_id, caller)
    return {"worker": worker_view(await runs.heartbeat(agent.worker.id)), "token": None}


@router.post(
    "/agent-workers/workers/{worker_id}/claim",
    response_model=None,
    responses=ok(vs.RunLease) | _errors(404),
    openapi_extra=json_body(vs.LeaseRequest),
)
async def claim(worker_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    runs = run_service(request)
    agent = await _worker(runs, worker_id, caller)
    seconds = parse.lease_seconds(parse.parse_json(await request.body()))
    state = await runs.claim(agent.worker.id, seconds)
    return {"run": None if state is None else run_view(state)}


@router.post(
    "/agent-workers/workers/{worker_id}/runs/{run_id}/lease",
    response_model=None,
    responses=ok(vs.RunLease) | _errors(404),
    openapi_extra=json_body(vs.LeaseRequest),
)
async def renew_lease(
    worker_id: str, run_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    runs = run_service(request)
    agent = await _worker(runs, worker_id, caller)
    run_id = parse.run_id_param(run_id)
    seconds = parse.lease_seconds(parse.parse_json(await request.body()))
    state = await runs.renew(agent.worker.id, run_id, seconds)
    return {"run": None if state is None else run_view(state)}


@router.put(
    "/agent-workers/workers/{worker_id}/runs/{run_id}/session",
    response_model=None,
    responses=ok(vs.WorkerSessionReply) | _errors(404, 409),
    openapi_extra=json_body(vs.WorkerSessionUpdate),
)
async def record_session(
    worker_id: str, run_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    runs = run_service(request)
    agent = await _worker(runs, worker_id, caller)
    run_id = parse.run_id_param(run_id)
    body = parse.parse_json(await request.body())
    session_key = body.get("session_key")
    if not isinstance(session_key, str) or not 1 <= len(session_key) <= 512:
        raise ApiError(400, "session_key must be a string of 1-512 characters")
    status = body.get("status")
    if status is not None and status not in parse.SESSION_STATUSES:
        raise ApiError(400, "status must be one of: " + ", ".join(parse.SESSION_STATUSES))
    metadata = parse.opt_object(body, "metadata")
    session = await runs.record_session(
        agent.worker.id,
        run_id,
        session_key=session_key,
        status=status,
        metadata=metadata,
        metadata_given="metadata" in body,
    )
    return {"session": worker_session_view(session)}


@router.delete(
    "/agent-workers/workers/{worker_id}",
    response_model=None,
    responses=ok(vs.WorkerRetired) | _errors(404),
)
async def retire_worker(worker_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    runs = run_service(request)
    agent = await _worker(runs, worker_id, caller)
    retired, released = await runs.retire(agent.worker.id)
    return {"deleted": True, "worker": worker_view(retired), "released_run_count": len(released)}


# -- conversations: AG-UI events and the run projection --


@router.post(
    "/conversations/{conversation_id}/runs/{run_id}/events",
    response_model=None,
    responses=ok(vs.EventsAppended) | _errors(404, 409),
    openapi_extra=json_body(vs.EventAppend),
)
@router.post(
    "/conversations/{conversation_id}/agent-runs/{run_id}/events",
    response_model=None,
    responses=ok(vs.EventsAppended) | _errors(404, 409),
    openapi_extra=json_body(vs.EventAppend),
)
@body_limit(MAX_APPEND_BYTES, status=400, message="Request payload must be less than 10 MiB")
@hot
async def append_events(conversation_id: str, run_id: str, request: Request) -> JSONResponse:
    caller = await vf_caller(request)
    raw = await request.body()
    conversation_id = parse.uuid_param(conversation_id, "conversation_id")
    run_id = parse.run_id_param(run_id)
    body = parse.parse_json(raw, nul_ok=True)
    events = _events(body.get("events"))
    expected_external = parse.opt_cursor(body, "expected_previous_external_event_sequence")
    expected_event_id = parse.opt_cursor(body, "expected_previous_event_id")
    runs = run_service(request)
    current = await runs.state(run_id, conversation_id)
    caller.require_run(current)
    state = await runs.append(
        run_id,
        conversation_id,
        events,
        expected_external_sequence=expected_external,
        expected_event_id=expected_event_id,
        worker_id=caller.worker_id,
        state=current,
    )
    return JSONResponse(
        {
            "run": run_view(state),
            "latest_event_id": state.run.latest_event_id,
            "latest_external_event_sequence": state.run.latest_external_event_sequence,
            "appended_count": len(events),
            "appended": True,
        }
    )


def _events(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_EVENTS:
        raise ApiError(400, f"events must be an array of 1-{MAX_EVENTS} events")
    # Each event's encoding is a part of the array's: an array within the bound needs no
    # encoding of each event to know they all are.
    sized = len(value) > 1 and parse.json_size(value) <= MAX_EVENT_BYTES
    for i, event in enumerate(value):
        if not isinstance(event, dict):
            raise ApiError(400, f"events[{i}] must be an object")
        kind = event.get("type")
        if not isinstance(kind, str) or not 1 <= len(kind) <= 64 or "\x00" in kind:
            raise ApiError(400, f"events[{i}].type must be a string of 1-64 characters")
        if not sized and parse.json_size(event) > MAX_EVENT_BYTES:
            raise ApiError(400, f"events[{i}] payload must be less than 240 KiB")
    return value


@router.get(
    "/conversations/{conversation_id}/runs/{run_id}",
    response_model=None,
    responses=ok(vs.RunView) | _errors(404),
)
@router.get(
    "/conversations/{conversation_id}/agent-runs/{run_id}",
    response_model=None,
    responses=ok(vs.RunView) | _errors(404),
)
async def read_conversation_run(
    conversation_id: str, run_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    conversation_id = parse.uuid_param(conversation_id, "conversation_id")
    state = await run_service(request).state(parse.run_id_param(run_id), conversation_id)
    caller.require_run(state)
    return run_view(state)


# -- runs: completion (the user-side run routes are in run_routes) --


@router.post(
    "/runs/{run_id}/complete",
    response_model=None,
    responses=ok(vs.RunCompleted) | _errors(404, 409),
    openapi_extra=json_body(vs.RunCompletion),
)
async def complete_run(run_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    run_id = parse.run_id_param(run_id)
    body = parse.parse_json(await request.body())
    status = body.get("status")
    if not isinstance(status, str) or status not in TERMINAL_FROM_WIRE:
        raise ApiError(400, "status must be one of: completed, failed, cancelled")
    done = Completion(
        TERMINAL_FROM_WIRE[status],
        terminal_error_code=parse.opt_text(body, "terminal_error_code", 200),
        terminal_error_message=parse.opt_text(body, "terminal_error_message", 10_000),
        metadata=_completion_metadata(body),
        output=body.get("output"),
    )
    runs = run_service(request)
    current = await runs.state(run_id)
    caller.require_run(current)
    state = await runs.complete(run_id, done, caller.worker_id)
    view = run_view(state)
    return {"completed": True, "run": view, "status": run_status(state.session)}


_TOKEN_COUNTS = ("inputTokens", "outputTokens", "cachedInputTokens", "reasoningTokens")
_METADATA_TEXTS = ("provider", "model", "finishReason", "providerRequestId")


def _completion_metadata(body: dict[str, Any]) -> dict[str, Any] | None:
    """`metadata` (provider, model, token counts, finish reason); kept as sent once its known
    keys have their types."""
    metadata = parse.opt_object(body, "metadata")
    if metadata is None:
        return None
    for key in _TOKEN_COUNTS:
        if key in metadata:
            parse.opt_int(metadata, key, 0, SAFE_INTEGER, label=f"metadata.{key}")
    for key in _METADATA_TEXTS:
        if key in metadata:
            parse.opt_text(metadata, key, 500, label=f"metadata.{key}")
    return metadata
