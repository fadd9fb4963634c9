"""The daemon's credential routes (rensei-platform.md §1.6-1.8): the env map for an agent it
spawns, the SSE stream of rotations for a running session, and the rotation trigger.

A bearer `rsk_live_…` key of the organisation (the daemon's registration key, or a user
key), an M2M access token, or the admin key. The `orgId` a body names must be the key's own
organisation (403 otherwise); a key limited to projects reads only its projects' maps. Reading
values needs `credentials:read` or the daemon's `worker:session`. Errors are `{"error": "…"}`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictStr

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.openapi import (
    ADMIN_KEY,
    OAUTH2,
    ORG_API_KEY,
    REGISTRATION_TOKEN,
    ok,
    tag,
)
from shopfloor.api.operator.schemas import RequestBody
from shopfloor.api.public.errors import platform_errors
from shopfloor.api.state import Services, services
from shopfloor.api.timefmt import iso
from shopfloor.service.actors import OPERATOR, Principal
from shopfloor.service.public_sessions import PublicSessions
from shopfloor.service.vault import DEFAULT_ENV, Scope
from shopfloor.store.records import SessionRecord
from shopfloor.store.tenancy_records import ALL

DAEMON_CREDENTIALS = tag(
    "Rensei daemon: credentials",
    "The env map a daemon injects into an agent (organisation, then project, then "
    "environment credentials; the server's own secrets never included), the SSE stream of "
    "rotations for a running session, and the rotation trigger. A bearer key of the "
    "organisation: its registration key, a user key or an M2M access token. "
    'Errors are `{"error": "…"}`.',
    ADMIN_KEY,
    ORG_API_KEY,
    REGISTRATION_TOKEN,
    OAUTH2,
)
router = APIRouter(
    prefix="/api/daemon/credentials",
    tags=[DAEMON_CREDENTIALS],
    responses=platform_errors(400, 401, 403, 413),
)
UNAUTHORIZED = "Unauthorized"
READ_SCOPES = ("credentials:read", "worker:session")
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class SnapshotRequest(RequestBody):
    orgId: StrictStr = Field(min_length=1, max_length=100, description="The key's organisation")
    projectId: StrictStr | None = Field(None, min_length=1, max_length=100)
    envName: StrictStr | None = Field(None, min_length=1, max_length=100)
    sessionId: StrictStr | None = Field(
        None, min_length=1, max_length=64, description="For the audit trail"
    )


class Snapshot(BaseModel):
    env: dict[str, str]
    refreshUntil: str = Field(description="Snapshot again before this time")


class RotateRequest(RequestBody):
    orgId: StrictStr = Field(min_length=1, max_length=100)
    kind: StrictStr = Field(min_length=1, max_length=128, description="What was rotated")


class Rotated(BaseModel):
    ok: bool
    kind: str
    sessionCount: int = Field(description="Subscribed sessions on the answering process")
    rotatedAt: str


async def daemon_principal(request: Request) -> Principal:
    """Who calls: the admin key, an access token, or any usable key of an organisation."""
    token = bearer(request)
    if token is None:
        raise ApiError(401, UNAUTHORIZED)
    creds = services(request).credentials
    if creds.is_admin(token):
        return OPERATOR
    if token.count(".") == 2:
        found = creds.access_token_principal(token)
        if found is not None:
            return found
    key = await creds.api_key(token)
    if key is None:
        raise ApiError(401, UNAUTHORIZED)
    projects = None if key.projects is None else frozenset(key.projects)
    return Principal(key.org_id, projects, frozenset(key.scopes), key.id)


Daemon = Annotated[Principal, Depends(daemon_principal)]


def _may_read(who: Principal) -> None:
    if not any(who.may(s) for s in READ_SCOPES):
        raise ApiError(403, "This key lacks the credentials:read scope")


async def _own_org(svc: Services, who: Principal, named: str) -> str:
    org = await svc.dispatcher.store.get_org(named)
    if org is None or (who.org_id is not None and org.id != who.org_id):
        raise ApiError(403, "orgId: does not match the authenticated organisation")
    return org.id


def _project(who: Principal, project: str | None) -> str:
    if project is None:
        if who.projects is not None:
            raise ApiError(400, "projectId is required for a key limited to projects")
        return ALL
    if who.projects is not None and project not in who.projects:
        raise ApiError(403, "projectId: this key may not read that project's credentials")
    return project


@router.post(
    "/snapshot",
    response_model=None,
    responses=ok(Snapshot) | platform_errors(404),
)
async def snapshot(body: SnapshotRequest, request: Request, who: Daemon) -> Snapshot:
    """The merged env map for a project and environment (default `production`)."""
    _may_read(who)
    svc = services(request)
    org = await _own_org(svc, who, body.orgId)
    scope = Scope(org, _project(who, body.projectId), body.envName or DEFAULT_ENV)
    if body.sessionId is not None:
        await PublicSessions(svc.dispatcher).find(who, body.sessionId)
    env = await svc.vault.env(scope)
    return Snapshot(env=env, refreshUntil=iso(svc.vault.refresh_until()) or "")


@router.post(
    "/rotate",
    response_model=None,
    responses=ok(Rotated),
)
async def rotate(body: RotateRequest, request: Request, who: Daemon) -> Rotated:
    """Push the organisation's current credentials to every subscribed session, on every
    server process. Any key of the organisation may ask (it reveals nothing)."""
    svc = services(request)
    org = await _own_org(svc, who, body.orgId)
    await svc.vault.rotate(org)
    return Rotated(
        ok=True,
        kind=body.kind,
        sessionCount=svc.vault.subscribers(org),
        rotatedAt=iso(svc.clock.now_ms()) or "",
    )


@router.get(
    "/rotate-stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": '`event: UPDATE` / `data: {"kind", "env", "changed", "rotatedAt"}`',
        },
        **platform_errors(404),
    },
)
async def rotate_stream(
    request: Request,
    who: Daemon,
    sessionId: Annotated[str | None, Query(max_length=64)] = None,
    envName: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> StreamingResponse:
    """An UPDATE event with the session's whole env map whenever its organisation's
    credentials change or are rotated; ends when the session ends."""
    _may_read(who)
    if not sessionId:
        raise ApiError(400, "sessionId is required")
    svc = services(request)
    session = await PublicSessions(svc.dispatcher).find(who, sessionId)
    if session.is_terminal:
        raise ApiError(404, "Session not found")
    scope = Scope(session.org_id, session.project or ALL, envName or DEFAULT_ENV)
    updates = _updates(svc, session, scope)
    return StreamingResponse(updates, media_type="text/event-stream", headers=SSE_HEADERS)


async def _updates(svc: Services, session: SessionRecord, scope: Scope) -> AsyncIterator[bytes]:
    vault, keepalive = svc.vault, svc.settings.stream_keepalive_seconds
    # Subscribed before the first frame: a rotation after the client saw it is not missed.
    with vault.subscribed(session.org_id, session.id) as signal:
        current = await vault.env(scope)
        yield b": stream open\n\n"
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(keepalive):
                    await signal.wait()
            signalled = signal.is_set()
            signal.clear()
            latest = await svc.dispatcher.store.get_session(session.id)
            if latest is None or latest.is_terminal:
                return
            if not signalled:
                yield b": ping\n\n"
                continue
            env = await vault.env(scope)
            changed = sorted(k for k in env.keys() | current.keys() if env.get(k) != current.get(k))
            current = env
            data = {
                "kind": changed[0] if len(changed) == 1 else "env",
                "env": env,
                "changed": changed,
                "rotatedAt": iso(svc.clock.now_ms()),
            }
            yield f"event: UPDATE\ndata: {json.dumps(data)}\n\n".encode()
