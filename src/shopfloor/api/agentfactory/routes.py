"""AgentFactory / Rensei worker protocol: `/api/workers/*`, `/api/sessions/*`, `/api/config`.

Bodies, status codes and messages follow shared/protocols/agentfactory-rensei.md §2 and §6;
the TS `af-worker` matches some of them verbatim (e.g. `Worker not found`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from shopfloor.api.agentfactory import schemas
from shopfloor.api.agentfactory.auth import WorkerCaller, authenticate, worker_caller
from shopfloor.api.agentfactory.poll_extras import runtime_poll_extras
from shopfloor.api.agentfactory.wire import inbox_message, queued_work, session_state
from shopfloor.api.envelope import (
    ApiError,
    is_number,
    json_object,
    opt_int,
    opt_number,
    opt_str,
    req_str,
)
from shopfloor.api.fastlane import hot
from shopfloor.api.openapi import RUNTIME_TOKEN, af_errors, json_body, ok, security
from shopfloor.api.public.daemon_routes import view as mutation_view
from shopfloor.api.state import services
from shopfloor.api.timefmt import iso
from shopfloor.service.dispatch import StatusReport
from shopfloor.store.records import WorkerRecord
from shopfloor.store.tenancy_records import ApiKeyRecord

router = APIRouter(tags=[schemas.WORKER_PROTOCOL], responses=af_errors(400, 401, 413))
Caller = Annotated[WorkerCaller, Depends(worker_caller)]

# The routes every worker calls in a loop (poll, status, heartbeat) are served by the fast lane
# (api/fastlane.py): they authenticate in their body and build their JSONResponse themselves.

REPORTABLE = ("running", "finalizing", "completed", "failed", "stopped")


# -- workers --


@router.post(
    "/api/workers/register",
    status_code=201,
    responses=ok(schemas.RegisterReply, 201),
    openapi_extra=json_body(schemas.RegisterRequest) | security(*schemas.REGISTER_SECURITY),
)
async def register(request: Request) -> JSONResponse:
    caller = await authenticate(request, allow_registration=True)
    if caller.runtime is not None:
        raise ApiError(401, "Register with the worker API key or a registration token")
    body = await json_object(request)
    hostname = req_str(body, "hostname")
    capacity = body.get("capacity")
    if not is_number(capacity) or capacity < 1 or int(capacity) != capacity:
        raise ApiError(400, "capacity must be a positive number")
    if capacity > schemas.MAX_CAPACITY:
        raise ApiError(400, f"capacity must be at most {schemas.MAX_CAPACITY}")
    projects = body.get("projects")
    if projects is not None and (
        not isinstance(projects, list) or not all(isinstance(p, str) for p in projects)
    ):
        raise ApiError(400, "projects must be an array of strings")
    capabilities = _capabilities(body.get("capabilities"))
    svc = services(request)
    worker = await svc.dispatcher.register_worker(
        hostname=hostname,
        capacity=int(capacity),
        version=opt_str(body, "version"),
        projects=projects or None,
        machine_id=opt_str(body, "machineId"),
        registration=caller.registration,
        metadata={"capabilities": capabilities} if capabilities else None,
    )
    reply: dict[str, Any] = {
        "workerId": worker.id,
        **_intervals(request),
        "runtimeToken": None,
        "runtimeTokenExpiresAt": None,
    }
    if caller.registration is not None:
        reply.update(_runtime_token(request, worker, caller.registration))
    return JSONResponse(reply, status_code=201)


def _capabilities(value: object) -> list[str]:
    """What the worker can do beyond sessions (`code-survival-scan`: batch work)."""
    if value is None:
        return []
    if (
        not isinstance(value, list)
        or len(value) > schemas.MAX_CAPABILITIES
        or not all(isinstance(c, str) and schemas.CAPABILITY.match(c) for c in value)
    ):
        raise ApiError(
            400,
            f"capabilities must be an array of at most {schemas.MAX_CAPABILITIES} names "
            "(lowercase letters, digits and -, up to 64 characters)",
        )
    return sorted(set(value))


@router.get("/api/config", response_model=None, responses=ok(schemas.ConfigReply))
async def config(caller: Caller) -> dict[str, Any]:
    projects = caller.runtime.projects if caller.runtime else None
    return {"projects": sorted(projects) if projects else []}


@router.post(
    "/api/workers/{worker_id}/heartbeat",
    responses=ok(schemas.HeartbeatReply) | af_errors(403, 404),
    openapi_extra=json_body(schemas.HeartbeatRequest),
)
@hot
async def heartbeat(worker_id: str, request: Request) -> JSONResponse:
    caller = await authenticate(request)
    await caller.check_acts_as(worker_id)
    body = await json_object(request, empty_ok=True)
    active = body.get("activeCount")
    if not is_number(active) or active < 0:
        raise ApiError(400, "activeCount must be a non-negative number")
    if active > schemas.MAX_CAPACITY:
        raise ApiError(400, f"activeCount must be at most {schemas.MAX_CAPACITY}")
    svc = services(request)
    dispatcher = svc.dispatcher
    await dispatcher.heartbeat(worker_id, int(active))
    reply: dict[str, Any] = {
        "acknowledged": True,
        "serverTime": iso(dispatcher.clock.now_ms()),
        "pendingWorkCount": await dispatcher.pending_count(caller.queue),
    }
    if svc.pending_mutations.has(worker_id):  # a set lookup: no statement for most heartbeats
        delivered = await svc.mutations.deliver(worker_id)
        if delivered:
            reply["mutations"] = [mutation_view(m).model_dump() for m in delivered]
    return JSONResponse(reply)


@router.get("/api/workers/{worker_id}/poll", responses=ok(schemas.PollReply) | af_errors(403, 404))
@hot
async def poll(worker_id: str, request: Request) -> JSONResponse:
    caller = await authenticate(request)
    await caller.check_acts_as(worker_id)
    dispatcher = services(request).dispatcher
    polled = await dispatcher.poll(
        worker_id, disconnected=lambda: _disconnect(request), queue=caller.queue
    )
    claimed, inbox = polled.claimed, polled.inbox
    reply: dict[str, Any] = {
        "work": [queued_work(s) for s in claimed],
        "inboxMessages": {sid: [inbox_message(m) for m in ms] for sid, ms in inbox.items()},
        "hasInboxMessages": bool(inbox),
        "preClaimed": bool(claimed),
        "claimedSessionIds": [s.id for s in claimed],
    }
    if caller.runtime is not None:  # the seed: runtime-JWT callers only
        reply.update(await runtime_poll_extras(services(request), caller.runtime, claimed))
    return JSONResponse(reply)


async def _disconnect(request: Request) -> None:
    """Finishes when the client has gone: the ASGI server's `http.disconnect`, after the
    (empty) body of the GET."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post(
    "/api/workers/{worker_id}/refresh-token",
    response_model=None,
    responses=ok(schemas.RefreshReply) | af_errors(403, 404),
    openapi_extra=security(*schemas.REFRESH_SECURITY),
)
async def refresh_token(worker_id: str, request: Request) -> dict[str, Any]:
    caller = await authenticate(request, allow_registration=True, allow_expired=True)
    await caller.check_acts_as(worker_id)
    if caller.static_key:
        raise ApiError(400, "Workers registered with the static API key have no runtime token")
    svc = services(request)
    worker = await svc.dispatcher.active_worker(worker_id)
    registration_id = caller.registration.id if caller.registration else None
    if registration_id is not None and registration_id != worker.registration_id:
        raise ApiError(403, "Registration token does not match worker")
    record = await svc.dispatcher.store.get_api_key(worker.registration_id or "")
    if record is None or not record.usable_at(svc.clock.now_ms()):
        raise ApiError(401, "Registration token revoked")
    return {**_runtime_token(request, worker, record), **_intervals(request)}


@router.delete(
    "/api/workers/{worker_id}",
    response_model=None,
    responses=ok(schemas.DeregisterReply) | af_errors(403, 404),
)
async def deregister(worker_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    await caller.check_acts_as(worker_id)
    released = await services(request).dispatcher.deregister(worker_id)
    return {"deregistered": True, "unclaimedSessions": released}


@router.post(
    "/api/workers/{worker_id}/batch-work/{item_id}/result",
    response_model=None,
    responses=ok(schemas.BatchResultReply) | af_errors(403, 404, 409),
    openapi_extra=json_body(schemas.BatchResultRequest) | security(RUNTIME_TOKEN),
)
async def batch_result(
    worker_id: str, item_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    """A batch item's end, from the worker holding its lease (the epoch it came with)."""
    await caller.check_acts_as(worker_id)
    if caller.runtime is None:
        raise ApiError(403, "Batch work is leased to runtime-JWT workers only")
    body = await json_object(request)
    epoch = body.get("leaseEpoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 1 <= epoch < 2**31:
        raise ApiError(400, "leaseEpoch must be the positive integer the item came with")
    result = body.get("result")
    if result is not None and not isinstance(result, dict):
        raise ApiError(400, "result must be an object")
    status = req_str(body, "status")
    item = await services(request).batch.report(worker_id, item_id, epoch, status, result)
    return {"id": item.id, "status": item.status, "acknowledged": True}


# -- sessions --


@router.post(
    "/api/sessions/{session_id}/claim",
    response_model=None,
    responses=ok(schemas.ClaimReply) | af_errors(403, 404),
    openapi_extra=json_body(schemas.ClaimRequest),
)
async def claim(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    worker_id = req_str(body, "workerId")
    await caller.check_acts_as(worker_id)
    outcome = await services(request).dispatcher.claim(session_id, worker_id)
    if not outcome.claimed or outcome.session is None:
        return {"claimed": False, "reason": outcome.reason}
    return {
        "claimed": True,
        "session": session_state(outcome.session),
        "work": queued_work(outcome.session),
    }


@router.post(
    "/api/sessions/{session_id}/status",
    responses=ok(schemas.StatusReply) | af_errors(403, 404, 409),
    openapi_extra=json_body(schemas.StatusRequest),
)
@hot
async def report_status(session_id: str, request: Request) -> JSONResponse:
    caller = await authenticate(request)
    body = await json_object(request)
    worker_id = req_str(body, "workerId")
    status = body.get("status")
    if status not in REPORTABLE:
        raise ApiError(400, "status must be one of: " + ", ".join(REPORTABLE))
    report = StatusReport(
        status=status,
        provider_session_id=opt_str(body, "providerSessionId"),
        worktree_path=opt_str(body, "worktreePath"),
        error_message=_error_message(body),
        total_cost_usd=opt_number(body, "totalCostUsd"),
        input_tokens=opt_int(body, "inputTokens"),
        output_tokens=opt_int(body, "outputTokens"),
    )
    await caller.check_acts_as(worker_id)
    session = await services(request).dispatcher.report_status(session_id, worker_id, report)
    return JSONResponse({"updated": True, "session": session_state(session)})


@router.get(
    "/api/sessions/{session_id}/status",
    response_model=None,
    responses=ok(schemas.SessionState) | af_errors(404),
)
async def read_status(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    dispatcher = services(request).dispatcher
    return session_state(await dispatcher.visible_session(session_id, caller.actor))


@router.post(
    "/api/sessions/{session_id}/nack",
    response_model=None,
    responses=ok(schemas.NackReply) | af_errors(403, 404, 409),
    openapi_extra=json_body(schemas.NackRequest),
)
async def nack(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    worker_id = req_str(body, "workerId")
    reason = opt_str(body, "reason")
    await caller.check_acts_as(worker_id)
    await services(request).dispatcher.nack(session_id, worker_id, reason)
    return {"nacked": True, "sessionId": session_id, "requeued": True}


@router.post(
    "/api/sessions/{session_id}/transfer-ownership",
    response_model=None,
    responses=ok(schemas.TransferReply) | af_errors(403),
    openapi_extra=json_body(schemas.TransferRequest),
)
async def transfer_ownership(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    message = "newWorkerId and oldWorkerId are required"
    new_worker = req_str(body, "newWorkerId", message)
    old_worker = req_str(body, "oldWorkerId", message)
    if not caller.actor.may_act_as(old_worker):
        await caller.check_acts_as(new_worker)
    dispatcher = services(request).dispatcher
    outcome = await dispatcher.transfer(session_id, old_worker, new_worker, caller.actor)
    if not outcome.transferred or outcome.session is None:
        return {"transferred": False, "reason": outcome.reason}
    return {"transferred": True, "session": session_state(outcome.session)}


# -- helpers --


def _intervals(request: Request) -> dict[str, int]:
    settings = services(request).settings
    return {
        "heartbeatInterval": settings.heartbeat_interval_ms,
        "pollInterval": settings.poll_interval_ms,
    }


def _runtime_token(
    request: Request, worker: WorkerRecord, registration: ApiKeyRecord
) -> dict[str, Any]:
    token, expires_ms = services(request).credentials.mint_runtime_token(worker.id, registration)
    return {"runtimeToken": token, "runtimeTokenExpiresAt": iso(expires_ms)}


def _error_message(body: dict[str, Any]) -> str | None:
    error = body.get("error")
    if error is None:
        return None
    if isinstance(error, str):
        return error
    if isinstance(error, dict) and isinstance(error.get("message", ""), str):
        return str(error.get("message") or "") or None
    raise ApiError(400, "error must be an object with a message string")


__all__ = ["router"]
