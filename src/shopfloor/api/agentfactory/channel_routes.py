"""AgentFactory session channel: what a running session posts (activity, progress, completion,
external URLs, tool errors, security scans), its issue-lock heartbeat, inbox ACKs, file
reservations and crash-recovery packets. Shapes follow agentfactory-rensei.md §2.9 to §2.15."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from shopfloor.api.agentfactory import schemas
from shopfloor.api.agentfactory.auth import WorkerCaller, authenticate, worker_caller
from shopfloor.api.agentfactory.wire import file_conflict, recovery_packet
from shopfloor.api.envelope import ApiError, json_object, opt_str, req_str
from shopfloor.api.fastlane import hot
from shopfloor.api.openapi import af_errors, json_body, ok
from shopfloor.api.state import services
from shopfloor.service.channel import LANES, SessionChannel

router = APIRouter(tags=[schemas.SESSION_CHANNEL], responses=af_errors(400, 401, 403, 404, 413))
Caller = Annotated[WorkerCaller, Depends(worker_caller)]
MAX_FILE_PATHS = 1000


def _channel(request: Request) -> SessionChannel:
    return services(request).dispatcher.channel


async def _acting_worker(caller: WorkerCaller, body: dict[str, Any]) -> str | None:
    """The worker a call acts for: its `workerId`, else a runtime JWT's subject. Static-key
    calls without a workerId (completion, external-urls, files/*) name no worker."""
    worker_id = opt_str(body, "workerId")
    if worker_id:
        await caller.check_acts_as(worker_id)
        return worker_id
    return caller.runtime.worker_id if caller.runtime else None


@router.post(
    "/api/sessions/{session_id}/lock-refresh",
    response_model=None,
    responses=ok(schemas.LockRefreshReply),
    openapi_extra=json_body(schemas.LockRefreshRequest),
)
async def lock_refresh(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    message = "workerId and issueId are required"
    worker_id = req_str(body, "workerId", message)
    issue_id = req_str(body, "issueId", message)
    await caller.check_acts_as(worker_id)
    channel = _channel(request)
    refreshed = await channel.refresh_issue_lock(session_id, worker_id, issue_id)
    reply: dict[str, Any] = {"refreshed": refreshed}
    session = await channel.store.get_session(session_id)
    if session is not None and session.stop_requested_at is not None:
        reply["stop"] = True  # the per-session cancel wire of the Go runner
    return reply


@router.post(
    "/api/sessions/{session_id}/progress",
    response_model=None,
    responses=ok(schemas.ProgressReply),
    openapi_extra=json_body(schemas.ProgressRequest),
)
async def progress(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    worker_id = req_str(body, "workerId")
    milestone = opt_str(body, "milestone")
    message = opt_str(body, "message")
    if not milestone and not message:
        raise ApiError(400, "milestone or message is required")
    await caller.check_acts_as(worker_id)
    data = {"milestone": milestone, "message": message}
    await _channel(request).record(session_id, worker_id, "progress", data)
    return {"posted": True, "milestone": milestone}


@router.post(
    "/api/sessions/{session_id}/activity",
    response_model=None,
    responses=ok(schemas.ActivityReply),
    openapi_extra=json_body(schemas.ActivityRequest),
)
@hot
async def activity(session_id: str, request: Request) -> JSONResponse:
    caller = await authenticate(request)
    body = await json_object(request)
    worker_id = req_str(body, "workerId")
    act = body.get("activity")
    if (
        not isinstance(act, dict)
        or not isinstance(act.get("type"), str)
        or not act["type"]
        or not isinstance(act.get("content"), str)
    ):
        raise ApiError(400, "activity with type and content is required")
    await caller.check_acts_as(worker_id)
    await _channel(request).record(session_id, worker_id, "activity", act)
    return JSONResponse({"forwarded": True})


@router.post(
    "/api/sessions/{session_id}/completion",
    response_model=None,
    responses=ok(schemas.CompletionReply),
    openapi_extra=json_body(schemas.CompletionRequest),
)
async def completion(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    summary = req_str(body, "summary")
    worker_id = await _acting_worker(caller, body)
    await _channel(request).record(session_id, worker_id, "completion", {"summary": summary})
    return {"posted": True, "partsPosted": 1, "totalParts": 1}


@router.post(
    "/api/sessions/{session_id}/external-urls",
    response_model=None,
    responses=ok(schemas.ExternalUrlsReply),
    openapi_extra=json_body(schemas.ExternalUrlsRequest),
)
async def external_urls(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    urls = body.get("externalUrls")
    if not isinstance(urls, list) or not all(
        isinstance(u, dict) and isinstance(u.get("label"), str) and isinstance(u.get("url"), str)
        for u in urls
    ):
        raise ApiError(400, "externalUrls must be an array of {label, url} objects")
    clean = [{"label": u["label"], "url": u["url"]} for u in urls]
    worker_id = await _acting_worker(caller, body)
    await _channel(request).record(session_id, worker_id, "external-urls", {"externalUrls": clean})
    return {"updated": True, "externalUrls": clean}


@router.post(
    "/api/sessions/{session_id}/tool-error",
    response_model=None,
    responses=ok(schemas.ToolErrorReply),
    openapi_extra=json_body(schemas.ToolErrorRequest),
)
async def tool_error(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    tool_name = req_str(body, "toolName")
    error_message = req_str(body, "errorMessage")
    context = body.get("context")
    if context is not None and not isinstance(context, dict):
        raise ApiError(400, "context must be an object")
    worker_id = await _acting_worker(caller, body)
    outcome = await _channel(request).tool_error(
        session_id,
        worker_id,
        {"toolName": tool_name, "errorMessage": error_message, "context": context or {}},
    )
    if not outcome.created:
        return {"created": False, "stored": False, "reason": outcome.reason}
    # Recorded on the timeline; shopfloor files no tracker issue for it.
    return {"created": False, "stored": True, "reason": "Recorded on the session timeline"}


@router.post(
    "/api/sessions/{session_id}/security-scan",
    response_model=None,
    responses=ok(schemas.StoredReply),
    openapi_extra=json_body(schemas.SecurityScanRequest),
)
async def security_scan(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    event = body.get("event")
    if not isinstance(event, dict):
        raise ApiError(400, "event is required")
    worker_id = await _acting_worker(caller, body)
    await _channel(request).record(session_id, worker_id, "security-scan", {"event": event})
    return {"stored": True}


@router.post(
    "/api/sessions/{session_id}/inbox/ack",
    response_model=None,
    responses=ok(schemas.InboxAckReply),
    openapi_extra=json_body(schemas.InboxAckRequest),
)
async def inbox_ack(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    message_id = req_str(body, "messageId")
    if body.get("lane") not in LANES:
        raise ApiError(400, 'lane must be "urgent" or "normal"')
    worker_id = await _acting_worker(caller, body)
    acknowledged = await _channel(request).ack(session_id, message_id, worker_id)
    return {"acknowledged": acknowledged}


# -- file reservations (platform routes; the worker uses them when it has no REDIS_URL) --


def _file_paths(body: dict[str, Any]) -> list[str]:
    paths = body.get("filePaths")
    if (
        not isinstance(paths, list)
        or not paths
        or len(paths) > MAX_FILE_PATHS
        or not all(isinstance(p, str) and p.strip() and len(p) <= 1000 for p in paths)
    ):
        raise ApiError(
            400, f"filePaths must be a non-empty array of at most {MAX_FILE_PATHS} paths"
        )
    return [p.strip() for p in paths]


@router.post(
    "/api/sessions/{session_id}/files/reserve",
    response_model=None,
    responses=ok(schemas.ReserveReply) | af_errors(409),
    openapi_extra=json_body(schemas.FilePathsRequest),
)
async def files_reserve(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    paths = _file_paths(body)
    reason = opt_str(body, "reason")
    worker_id = await _acting_worker(caller, body)
    reserved, conflicts = await _channel(request).reserve_files(
        session_id, worker_id, paths, reason
    )
    return {"reserved": reserved, "conflicts": [file_conflict(c) for c in conflicts]}


@router.post(
    "/api/sessions/{session_id}/files/check-conflicts",
    response_model=None,
    responses=ok(schemas.ConflictsReply),
    openapi_extra=json_body(schemas.FilePathsRequest),
)
async def files_check(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    paths = _file_paths(body)
    worker_id = await _acting_worker(caller, body)
    conflicts = await _channel(request).file_conflicts(session_id, worker_id, paths)
    return {"conflicts": [file_conflict(c) for c in conflicts]}


@router.post(
    "/api/sessions/{session_id}/files/release",
    response_model=None,
    responses=ok(schemas.ReleaseReply),
    openapi_extra=json_body(schemas.FilePathsRequest),
)
async def files_release(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    paths = _file_paths(body)
    worker_id = await _acting_worker(caller, body)
    return {"released": await _channel(request).release_files(session_id, worker_id, paths)}


@router.post(
    "/api/sessions/{session_id}/files/release-all",
    response_model=None,
    responses=ok(schemas.ReleaseReply),
    openapi_extra=json_body(schemas.WorkerIdRequest, required=False),
)
async def files_release_all(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_object(request, empty_ok=True)
    worker_id = await _acting_worker(caller, body)
    return {"released": await _channel(request).release_all_files(session_id, worker_id)}


# -- crash recovery packets --


@router.get(
    "/api/sessions/{session_id}/recovery",
    response_model=None,
    responses=ok(schemas.RecoveryLatestReply),
)
async def recovery_latest(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    """The newest recovery packet of the session (what a resuming worker reads)."""
    await services(request).dispatcher.visible_session(session_id, caller.actor)
    chain = await _channel(request).recovery_chain(session_id)
    return {
        "sessionId": session_id,
        "found": bool(chain),
        "packet": recovery_packet(chain[-1]) if chain else None,
    }


@router.post(
    "/api/sessions/{session_id}/recovery",
    status_code=201,
    response_model=None,
    responses=ok(schemas.RecoveryStoredReply, 201),
    openapi_extra=json_body(schemas.RecoveryRequest, required=False),
)
async def recovery_generate(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    """Snapshot a crashed session now and store the packet."""
    body = await json_object(request, empty_ok=True)
    await services(request).dispatcher.visible_session(session_id, caller.actor)
    reason = opt_str(body, "reason")
    worker_id = await _acting_worker(caller, body)
    packet = await _channel(request).generate_packet(session_id, worker_id, reason)
    return {"stored": True, "packet": recovery_packet(packet)}


@router.get(
    "/api/sessions/{session_id}/recovery/chain",
    response_model=None,
    responses=ok(schemas.RecoveryChainReply),
)
async def recovery_chain(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    """Every packet of the session, oldest first: one per crash."""
    await services(request).dispatcher.visible_session(session_id, caller.actor)
    chain = await _channel(request).recovery_chain(session_id)
    return {"sessionId": session_id, "packets": [recovery_packet(p) for p in chain]}
