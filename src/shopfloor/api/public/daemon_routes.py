"""The daemon-native worker routes (rensei-platform.md §1.1, §1.2, §1.9): v1 registration and
heartbeat, mapped onto the same worker records as /api/workers/*, and the mutations an
operator queues for one daemon host, delivered in its next v1 heartbeat reply. Errors are
`{"error": "…"}`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from shopfloor.api.agentfactory.auth import WorkerCaller, authenticate, worker_caller
from shopfloor.api.agentfactory.schemas import MAX_CAPACITY
from shopfloor.api.agentfactory.wire import queued_work
from shopfloor.api.envelope import ApiError, json_object
from shopfloor.api.openapi import (
    ADMIN_KEY,
    OAUTH2,
    ORG_API_KEY,
    REGISTRATION_TOKEN,
    RUNTIME_TOKEN,
    WORKER_KEY,
    json_body,
    ok,
    security,
    tag,
)
from shopfloor.api.operator.schemas import RequestBody, validation_message
from shopfloor.api.public.daemon_credentials import daemon_principal
from shopfloor.api.public.errors import platform_errors
from shopfloor.api.state import services
from shopfloor.api.timefmt import iso
from shopfloor.service.actors import Principal
from shopfloor.service.daemon_mutations import AlreadyDelivered, DaemonMutations, MutationOp
from shopfloor.service.daemon_mutations import MutationNotFound as _Missing
from shopfloor.service.dispatch import af_queue
from shopfloor.store.records import PENDING
from shopfloor.store.routing_records import Mutation

DAEMON_HOSTS = tag(
    "Rensei daemon: hosts",
    "Daemon-native registration and heartbeat (`/v1/daemon/*`: the registration token in the "
    "body, then the runtime JWT), and the mutations an operator queues for a daemon host, "
    "delivered in its next v1 heartbeat reply, and a queued session's work item for a cloud "
    "runner (`/api/daemon/sessions/{id}`, a runtime JWT or the worker key). Mutations take an "
    "organisation's key: "
    '`workers:read` to list, `workers:write` to enqueue and cancel. Errors are `{"error": "…"}`.',
    ADMIN_KEY,
    ORG_API_KEY,
    OAUTH2,
)
router = APIRouter(tags=[DAEMON_HOSTS], responses=platform_errors(400, 401, 403, 404, 413))
Daemon = Annotated[Principal, Depends(daemon_principal)]
Status = Literal["idle", "busy", "draining"]
Short = Annotated[StrictStr, Field(min_length=1, max_length=200)]
MAX_PARAMS = 64 * 1024


class V1Register(RequestBody):
    registrationToken: StrictStr = Field(description="rsk_live_… or rsp_live_…")
    hostname: Short
    maxAgents: StrictInt = Field(gt=0, le=MAX_CAPACITY)
    version: Short | None = None
    machineId: Short | None = None
    region: Short | None = None
    capabilities: list[Short] | None = Field(None, max_length=100)
    activeAgentCount: StrictInt | None = Field(None, ge=0, le=MAX_CAPACITY)
    status: Status | None = None


class V1Registered(BaseModel):
    workerId: str
    runtimeJwt: str
    heartbeatIntervalSeconds: int
    pollIntervalSeconds: int


class V1Heartbeat(RequestBody):
    workerId: Short
    activeSessions: StrictInt = Field(ge=0, le=MAX_CAPACITY)
    hostname: Short | None = None
    status: Status | None = None
    maxSessions: StrictInt | None = Field(None, ge=0, le=MAX_CAPACITY)
    region: Short | None = None
    capabilities: list[Short] | None = Field(None, max_length=100)
    version: Short | None = None


class MutationView(BaseModel):
    id: str
    orgId: str
    workerHostId: str
    op: str
    params: dict[str, Any]
    status: str = Field(description="pending, delivered or cancelled")
    requestedBy: str
    deliveredAt: str | None
    cancelledAt: str | None
    createdAt: str


class V1HeartbeatReply(BaseModel):
    acknowledged: bool
    ok: bool
    serverTime: str
    serverTimeMs: int
    pendingWorkCount: int
    mutations: list[MutationView] = Field(description="Delivered now, once")


class QueuedSessionDetail(BaseModel):
    """The poll work item of a queued session (every field it was queued with) and where it
    came from."""

    model_config = ConfigDict(extra="allow")

    sessionId: str
    linearSessionId: str
    issueId: str
    issueIdentifier: str
    priority: int
    queuedAt: int
    organizationId: str
    platformUrl: str
    prompt: str | None = None
    workType: str | None = None
    projectName: str | None = None
    repository: str | None = None
    providerSessionId: str | None = None


class MutationCreate(RequestBody):
    workerHostId: Short
    op: MutationOp
    params: dict[str, Any] = Field(default_factory=dict)


class MutationReply(BaseModel):
    mutation: MutationView


class MutationList(BaseModel):
    mutations: list[MutationView]


class MutationCancelled(BaseModel):
    cancelled: bool


def view(m: Mutation) -> MutationView:
    return MutationView(
        id=m.id,
        orgId=m.org_id,
        workerHostId=m.worker_id,
        op=m.op,
        params=m.params,
        status=m.status,
        requestedBy=m.requested_by,
        deliveredAt=iso(m.delivered_at),
        cancelledAt=iso(m.cancelled_at),
        createdAt=iso(m.created_at) or "",
    )


def _mutations(request: Request) -> DaemonMutations:
    return services(request).mutations


def _need(who: Principal, scope: str) -> None:
    if not who.may(scope):
        raise ApiError(403, f"This key lacks the {scope} scope")


# -- v1 registration and heartbeat --


@router.post(
    "/v1/daemon/register",
    response_model=None,
    responses=ok(V1Registered),
    openapi_extra=json_body(V1Register) | security(REGISTRATION_TOKEN),
)
async def v1_register(request: Request) -> V1Registered:
    """Register with the registration token in the body; later calls use `runtimeJwt`."""
    body = await json_object(request)
    token = body.get("registrationToken")
    if not isinstance(token, str) or not token:
        raise ApiError(401, "registrationToken is required")
    svc = services(request)
    registration = await svc.credentials.registration_token(token)
    if registration is None:
        raise ApiError(401, "Invalid or revoked registration token")
    try:
        asked = V1Register.model_validate(body)
    except ValidationError as exc:
        raise ApiError(400, validation_message(list(exc.errors()))) from None
    worker = await svc.dispatcher.register_worker(
        hostname=asked.hostname,
        capacity=asked.maxAgents,
        version=asked.version,
        projects=None,
        machine_id=asked.machineId,
        registration=registration,
        metadata={
            k: v
            for k, v in (("region", asked.region), ("capabilities", asked.capabilities))
            if v is not None
        },
    )
    if asked.activeAgentCount:
        await svc.dispatcher.heartbeat(worker.id, asked.activeAgentCount)
    jwt, _ = svc.credentials.mint_runtime_token(worker.id, registration)
    return V1Registered(
        workerId=worker.id,
        runtimeJwt=jwt,
        heartbeatIntervalSeconds=max(1, svc.settings.heartbeat_interval_ms // 1000),
        pollIntervalSeconds=max(1, svc.settings.poll_interval_ms // 1000),
    )


async def runtime_caller(request: Request) -> WorkerCaller:
    caller = await authenticate(request)
    if caller.runtime is None:
        raise ApiError(401, "A runtime JWT is required")
    return caller


@router.post(
    "/v1/daemon/heartbeat",
    response_model=None,
    responses=ok(V1HeartbeatReply),
    openapi_extra=security(RUNTIME_TOKEN),
)
async def v1_heartbeat(
    body: V1Heartbeat,
    request: Request,
    caller: Annotated[WorkerCaller, Depends(runtime_caller)],
) -> V1HeartbeatReply:
    """Keep the worker alive; the reply carries the mutations queued for this host."""
    assert caller.runtime is not None
    if body.workerId != caller.runtime.worker_id:
        raise ApiError(403, "workerId: does not match the runtime token")
    svc = services(request)
    dispatcher = svc.dispatcher
    await dispatcher.heartbeat(body.workerId, body.activeSessions)
    delivered = await _mutations(request).deliver(body.workerId)
    now = dispatcher.clock.now_ms()
    return V1HeartbeatReply(
        acknowledged=True,
        ok=True,
        serverTime=iso(now) or "",
        serverTimeMs=now,
        pendingWorkCount=await dispatcher.pending_count(af_queue(caller.runtime.org_id)),
        mutations=[view(m) for m in delivered],
    )


# -- mutations --


@router.get("/api/daemon/mutations", response_model=None, responses=ok(MutationList))
async def list_mutations(
    request: Request,
    who: Daemon,
    workerHostId: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> MutationList:
    _need(who, "workers:read")
    if not workerHostId:
        raise ApiError(400, "workerHostId is required")
    found = await _mutations(request).of_host(who, workerHostId, limit)
    return MutationList(mutations=[view(m) for m in found])


@router.post("/api/daemon/mutations", response_model=None, responses=ok(MutationReply))
async def enqueue_mutation(body: MutationCreate, request: Request, who: Daemon) -> MutationReply:
    _need(who, "workers:write")
    if len(repr(body.params)) > MAX_PARAMS:
        raise ApiError(400, f"params: must be at most {MAX_PARAMS} bytes")
    mutation = await _mutations(request).enqueue(who, body.workerHostId, body.op, body.params)
    return MutationReply(mutation=view(mutation))


@router.delete(
    "/api/daemon/mutations/{mutation_id}",
    response_model=None,
    responses=ok(MutationCancelled) | platform_errors(409),
)
async def cancel_mutation(mutation_id: str, request: Request, who: Daemon) -> Any:
    """Cancel a mutation not yet delivered; 409 `{"cancelled": false, "reason":
    "already_delivered"}` once its host has it."""
    _need(who, "workers:write")
    try:
        await _mutations(request).cancel(who, mutation_id)
    except _Missing:
        raise ApiError(404, "Mutation not found") from None
    except AlreadyDelivered:
        body = {"cancelled": False, "reason": "already_delivered", "error": "Already delivered"}
        return JSONResponse(body, status_code=409)
    return MutationCancelled(cancelled=True)


# -- queued session detail for cloud runners --


@router.get(
    "/api/daemon/sessions/{session_id}",
    response_model=None,
    responses=ok(QueuedSessionDetail),
    openapi_extra=security(RUNTIME_TOKEN, WORKER_KEY),
)
async def daemon_session_detail(
    session_id: str, request: Request, caller: Annotated[WorkerCaller, Depends(worker_caller)]
) -> dict[str, Any]:
    """A queued session's work item, for a cloud runner with no local daemon; only while it
    is queued (404 once claimed)."""
    svc = services(request)
    session = await svc.dispatcher.visible_session(session_id, caller.actor)
    if session.status != PENDING:
        raise ApiError(404, "Session not found")
    return {
        **queued_work(session),
        "linearSessionId": session.id,
        "organizationId": session.org_id,
        "platformUrl": str(request.base_url).rstrip("/"),
    }
