"""The environment work API, one router per wire dialect over the same engine:
Qoder's `/api/v1/cloud/environments/*` and Anthropic's `/v1/environments/*`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from shopfloor.api.envelope import ApiError, json_object
from shopfloor.api.environments import wire
from shopfloor.api.environments.auth import (
    Caller,
    authenticate,
    require_admin,
    require_environment,
)
from shopfloor.api.environments.schemas import (
    Environment,
    EnvironmentCreate,
    EnvironmentDeleted,
    EnvironmentError,
    EnvironmentPage,
    EnvironmentUpdate,
    HeartbeatBody,
    StopBody,
    Work,
    WorkHeartbeat,
    WorkPage,
    WorkStats,
    WorkUpdate,
)
from shopfloor.api.fastlane import hot
from shopfloor.api.openapi import (
    ADMIN_KEY,
    API_KEY_HEADER,
    REGISTRATION_TOKEN,
    errors,
    json_body,
    ok,
    security,
    tag,
)
from shopfloor.api.state import services
from shopfloor.service.environments import Environments, NewEnvironment
from shopfloor.service.work import DEFAULT_RECLAIM_MS, WorkQueue
from shopfloor.store.tenancy_records import DEFAULT_ORG

WORKER_ID_MAX = 255
# Qoder's environment list filters (sent by qca's `environments.list(created_at_gte=…)`).
CreatedAtGte = Annotated[
    str | None,
    Query(alias="created_at[gte]", description="Created at or after (RFC 3339)"),
]
CreatedAtLte = Annotated[
    str | None,
    Query(alias="created_at[lte]", description="Created at or before (RFC 3339)"),
]


@dataclass(frozen=True)
class Dialect:
    """What differs between the two vendors' paths (the environment work API here, and the
    managed-agents API over the same prefixes in api/managed/routes.py)."""

    prefix: str
    tag: str
    worker_header: str
    accept_x_api_key: bool  # Anthropic SDK 1.x authenticates with x-api-key
    empty_string_deletes: bool  # Anthropic: a metadata value of "" deletes the key
    sessions_tag: str
    # Qoder: a user message while a turn runs is a 409 (its agent SDK retries on it);
    # Anthropic: it is answered in the same turn.
    refuse_busy_input: bool


QODER = Dialect(
    prefix="/api/v1/cloud",
    tag="Qoder environments",
    worker_header="Worker-ID",
    accept_x_api_key=False,
    empty_string_deletes=False,
    sessions_tag="Qoder managed agents",
    refuse_busy_input=True,
)
ANTHROPIC = Dialect(
    prefix="/v1",
    tag="Anthropic environments",
    worker_header="Anthropic-Worker-ID",
    accept_x_api_key=True,
    empty_string_deletes=True,
    sessions_tag="Managed agents",
    refuse_busy_input=False,
)


def _errors(*codes: int) -> dict[int | str, Any]:
    return errors(EnvironmentError, *codes)


def _tag(d: Dialect) -> str:
    keys = (API_KEY_HEADER,) if d.accept_x_api_key else ()
    return tag(
        d.tag,
        f"The self-hosted environment work API on {d.prefix}/environments: environments (managed "
        "with the admin key only) and their work queues (poll, ack, heartbeat, stop), worked "
        "with the admin key or a registration token (`rsp_live_…` only in its own "
        f"environment){'; the key may also come in `x-api-key`' if keys else ''}. Errors are "
        '`{"type": "error", "request_id", "error": {"type", "message", "details"}}`.',
        ADMIN_KEY,
        REGISTRATION_TOKEN,
        *keys,
    )


def environments_router(d: Dialect) -> APIRouter:
    router = APIRouter(
        prefix=d.prefix + "/environments", tags=[_tag(d)], responses=_errors(400, 401, 403, 413)
    )
    admin_only = security(ADMIN_KEY, *((API_KEY_HEADER,) if d.accept_x_api_key else ()))

    async def caller(request: Request, environment_id: str | None = None) -> Caller:
        who = await authenticate(request, d.accept_x_api_key)
        if environment_id is None:
            require_admin(who)
        else:
            await require_environment(request, who, environment_id)
        return who

    def worker_id(request: Request) -> str | None:
        value = request.headers.get(d.worker_header)
        if value is None or not value.strip():
            return None
        if len(value) > WORKER_ID_MAX:
            raise ApiError(400, f"{d.worker_header}: at most {WORKER_ID_MAX} characters")
        return value.strip()

    def envs(request: Request) -> Environments:
        dispatcher = services(request).dispatcher
        return Environments(dispatcher.store, dispatcher.clock)

    def queue(request: Request) -> WorkQueue:
        return services(request).work

    # -- environments --

    @router.post(
        "",
        summary="Create a self-hosted environment",
        response_model=None,
        responses=ok(Environment),
        openapi_extra=json_body(EnvironmentCreate) | admin_only,
    )
    async def create_environment(request: Request) -> dict[str, Any]:
        who = await caller(request)
        body = await json_object(request)
        patch = wire.metadata_patch(body, empty_deletes=False, allow_null=False)
        project = await envs(request).create(
            NewEnvironment(
                name=wire.text(body, "name", maximum=wire.NAME_MAX, required=True) or "",
                description=wire.text(body, "description", maximum=wire.DESCRIPTION_MAX),
                config=wire.config(body),
                metadata={k: v for k, v in (patch or {}).items() if v is not None},
                scope=wire.scope(body),
            ),
            who.org_id or DEFAULT_ORG,
        )
        return wire.environment(project)

    @router.get(
        "",
        summary="List environments",
        response_model=None,
        responses=ok(EnvironmentPage),
        openapi_extra=admin_only,
    )
    async def list_environments(
        request: Request,
        limit: str | None = None,
        page: str | None = None,
        include_archived: str | None = None,
        created_at_gte: CreatedAtGte = None,
        created_at_lte: CreatedAtLte = None,
    ) -> dict[str, Any]:
        who = await caller(request)
        found = await envs(request).list_page(
            org_id=who.scope_org,
            include_archived=bool(wire.query_bool(include_archived, "include_archived")),
            after_id=wire.cursor(page, "page", wire.ENV_ID),
            limit=wire.list_limit(limit),
            created_from=wire.created_bound(created_at_gte, "created_at[gte]", upper=False),
            created_until=wire.created_bound(created_at_lte, "created_at[lte]", upper=True),
        )
        return wire.page([wire.environment(p) for p in found.items], found.has_more)

    @router.get(
        "/{environment_id}",
        summary="Get an environment",
        response_model=None,
        responses=ok(Environment) | _errors(404),
        openapi_extra=admin_only,
    )
    async def get_environment(environment_id: str, request: Request) -> dict[str, Any]:
        who = await caller(request)
        return wire.environment(await envs(request).get(environment_id, who.scope_org))

    @router.post(
        "/{environment_id}",
        summary="Update an environment",
        response_model=None,
        responses=ok(Environment) | _errors(404, 409),
        openapi_extra=json_body(EnvironmentUpdate, required=False) | admin_only,
    )
    async def update_environment(environment_id: str, request: Request) -> dict[str, Any]:
        who = await caller(request)
        body = await json_object(request, empty_ok=True)
        changes: dict[str, Any] = {}
        if body.get("name") is not None:
            changes["name"] = wire.text(body, "name", maximum=wire.NAME_MAX, required=True)
        if "description" in body:
            changes["description"] = wire.text(body, "description", maximum=wire.DESCRIPTION_MAX)
        if body.get("config") is not None:
            changes["config"] = wire.config(body)
        if body.get("scope") is not None:
            changes["scope"] = wire.scope(body)
        patch = wire.metadata_patch(body, empty_deletes=d.empty_string_deletes)
        project = await envs(request).update(environment_id, changes, patch, who.scope_org)
        return wire.environment(project)

    @router.delete(
        "/{environment_id}",
        summary="Delete an environment",
        response_model=None,
        responses=ok(EnvironmentDeleted) | _errors(404, 409),
        openapi_extra=admin_only,
    )
    async def delete_environment(environment_id: str, request: Request) -> dict[str, Any]:
        who = await caller(request)
        await envs(request).delete(environment_id, who.scope_org)
        queue(request).forget_idle(environment_id)
        return {"id": environment_id, "type": "environment_deleted"}

    @router.post(
        "/{environment_id}/archive",
        summary="Archive an environment",
        response_model=None,
        responses=ok(Environment) | _errors(404, 409),
        openapi_extra=admin_only,
    )
    async def archive_environment(environment_id: str, request: Request) -> dict[str, Any]:
        who = await caller(request)
        return wire.environment(await envs(request).archive(environment_id, who.scope_org))

    # -- work (poll and stats before /work/{work_id}, which would match them) --

    @router.get(
        "/{environment_id}/work/poll",
        summary="Poll for work (long poll up to 999 ms)",
        responses=ok(Work | None, description="The item, or null when the queue is empty")
        | _errors(404),
    )
    @hot
    async def poll(
        environment_id: str,
        request: Request,
        block_ms: str | None = None,
        reclaim_older_than_ms: str | None = None,
    ) -> JSONResponse:
        await caller(request, environment_id)
        block = wire.query_int(block_ms, "block_ms", minimum=1, maximum=999)
        reclaim = wire.query_int(reclaim_older_than_ms, "reclaim_older_than_ms", minimum=0)
        item = await queue(request).poll(
            environment_id,
            worker_id(request),
            block,
            DEFAULT_RECLAIM_MS if reclaim is None else reclaim,
        )
        # An empty queue is 200 with the JSON literal null: the SDK's poll() returns None.
        return JSONResponse(None if item is None else wire.work(item))

    @router.get(
        "/{environment_id}/work/stats",
        summary="Queue statistics",
        response_model=None,
        responses=ok(WorkStats) | _errors(404),
    )
    async def stats(environment_id: str, request: Request) -> dict[str, Any]:
        await caller(request, environment_id)
        return wire.stats(await queue(request).stats(environment_id))

    @router.get(
        "/{environment_id}/work",
        summary="List work items in queue order",
        response_model=None,
        responses=ok(WorkPage) | _errors(404),
    )
    async def list_work(
        environment_id: str,
        request: Request,
        limit: str | None = None,
        page: str | None = None,
        after_id: str | None = None,
        before_id: str | None = None,
    ) -> dict[str, Any]:
        await caller(request, environment_id)
        if sum(x is not None for x in (page, after_id, before_id)) > 1:
            raise ApiError(400, "page, after_id and before_id are mutually exclusive")
        after = wire.cursor(page, "page", wire.WORK_ID) or wire.cursor(
            after_id, "after_id", wire.WORK_ID
        )
        before = wire.cursor(before_id, "before_id", wire.WORK_ID)
        found = await queue(request).list_page(
            environment_id, after=after, before=before, limit=wire.list_limit(limit)
        )
        return wire.page(
            [wire.work(s) for s in found.items], found.has_more, forward=before is None
        )

    @router.get(
        "/{environment_id}/work/{work_id}",
        summary="Get a work item",
        response_model=None,
        responses=ok(Work) | _errors(404),
    )
    async def get_work(environment_id: str, work_id: str, request: Request) -> dict[str, Any]:
        await caller(request, environment_id)
        return wire.work(await queue(request).get(environment_id, work_id))

    @router.post(
        "/{environment_id}/work/{work_id}",
        summary="Merge-patch a work item's metadata",
        response_model=None,
        responses=ok(Work) | _errors(404, 409),
        openapi_extra=json_body(WorkUpdate, required=False),
    )
    async def update_work(environment_id: str, work_id: str, request: Request) -> dict[str, Any]:
        await caller(request, environment_id)
        body = await json_object(request, empty_ok=True)
        patch = wire.metadata_patch(body, empty_deletes=d.empty_string_deletes) or {}
        return wire.work(await queue(request).update_metadata(environment_id, work_id, patch))

    @router.post(
        "/{environment_id}/work/{work_id}/ack",
        summary="Acknowledge a polled item",
        response_model=None,
        responses=ok(Work) | _errors(404, 409),
    )
    @hot
    async def ack(environment_id: str, work_id: str, request: Request) -> dict[str, Any]:
        await caller(request, environment_id)
        item = await queue(request).ack(environment_id, work_id, worker_id(request))
        return wire.work(item)

    @router.post(
        "/{environment_id}/work/{work_id}/heartbeat",
        summary="Extend the lease",
        response_model=None,
        responses=ok(WorkHeartbeat) | _errors(404, 409, 412),
        openapi_extra=json_body(HeartbeatBody, required=False),
    )
    @hot
    async def heartbeat(
        environment_id: str,
        work_id: str,
        request: Request,
        expected_last_heartbeat: str | None = None,
        desired_ttl_seconds: str | None = None,
    ) -> dict[str, Any]:
        await caller(request, environment_id)
        # The SDKs send both as query parameters; a JSON body is read as a fallback.
        body = await json_object(request, empty_ok=True)
        expected_raw = expected_last_heartbeat or _opt_str(body, "expected_last_heartbeat")
        ttl_raw = desired_ttl_seconds
        if ttl_raw is None and body.get("desired_ttl_seconds") is not None:
            ttl_raw = str(body["desired_ttl_seconds"])
        beat = await queue(request).heartbeat(
            environment_id,
            work_id,
            wire.expected_heartbeat(expected_raw),
            wire.query_int(ttl_raw, "desired_ttl_seconds", minimum=1),
        )
        return {
            "type": "work_heartbeat",
            "last_heartbeat": wire.ts(beat.last_heartbeat),
            "lease_extended": beat.lease_extended,
            "state": beat.state,
            "ttl_seconds": beat.ttl_seconds,
        }

    @router.post(
        "/{environment_id}/work/{work_id}/stop",
        summary="Stop (graceful or force)",
        response_model=None,
        responses=ok(Work) | _errors(404, 409),
        openapi_extra=json_body(StopBody, required=False),
    )
    @hot
    async def stop(environment_id: str, work_id: str, request: Request) -> dict[str, Any]:
        await caller(request, environment_id)
        body = await json_object(request, empty_ok=True)
        force = body.get("force", False)
        if force is None:
            force = False
        if not isinstance(force, bool):
            raise ApiError(400, "force: must be a boolean")
        item = await queue(request).stop(
            environment_id, work_id, force=force, worker_id=worker_id(request)
        )
        return wire.work(item)

    return router


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name}: must be a string")
    return value
