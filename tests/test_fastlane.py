"""The fast lane (api/fastlane.py) answers the hot worker routes without FastAPI's router.

It must be invisible on the wire: the same requests get the same status, headers and body
with the lane as through FastAPI alone, errors included; and it must actually be the lane
that answers them, with every other request passed on."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from starlette.types import Receive, Scope, Send

from shopfloor.api.agentfactory.routes import router as agentfactory_router
from shopfloor.api.environments.routes import ANTHROPIC, QODER, environments_router
from shopfloor.api.fastlane import lanes
from shopfloor.app import TELEMETRY_LOOK_EVERY_S, create_app
from shopfloor.clock import ManualClock
from tests.agentfactory.helpers import ADMIN, WORKER
from tests.conftest import Backend, _drop_schema, make_settings

A = "/v1/environments"
Q = "/api/v1/cloud/environments"
RID = {"x-request-id": "req-fixed"}


def test_the_hot_routes_are_in_the_lane() -> None:
    found = lanes([agentfactory_router, environments_router(QODER), environments_router(ANTHROPIC)])
    served = sorted((sorted(lane.methods)[0], lane.route.path) for lane in found)
    env = [
        ("GET", "/{environment_id}/work/poll"),
        ("POST", "/{environment_id}/work/{work_id}/ack"),
        ("POST", "/{environment_id}/work/{work_id}/heartbeat"),
        ("POST", "/{environment_id}/work/{work_id}/stop"),
    ]
    assert served == sorted(
        [
            ("GET", "/api/workers/{worker_id}/poll"),
            ("POST", "/api/sessions/{session_id}/status"),
            ("POST", "/api/workers/{worker_id}/heartbeat"),
        ]
        + [(m, prefix + p) for prefix in (A, Q) for m, p in env]
    )


def test_a_managed_sessions_tool_results_take_the_lane() -> None:
    """The SDK's worker posts every tool result to POST /v1/sessions/{id}/events (and a
    Qoder worker to the same route under /api/v1/cloud)."""
    from shopfloor.api.environments.routes import ANTHROPIC, QODER
    from shopfloor.api.managed.routes import managed_router

    routers = [managed_router(ANTHROPIC), managed_router(QODER)]
    served = [(sorted(lane.methods), lane.route.path) for lane in lanes(routers)]
    assert served == [
        (["POST"], "/v1/sessions/{session_id}/events"),
        (["POST"], "/api/v1/cloud/sessions/{session_id}/events"),
    ]


def test_a_hot_endpoint_with_an_unsupported_parameter_is_refused() -> None:
    from fastapi import APIRouter, Query

    from shopfloor.api.fastlane import hot

    router = APIRouter()

    @router.get("/x/{item}")
    @hot
    async def typed(item: str, limit: int = Query(1)) -> dict[str, Any]:
        return {}

    with pytest.raises(TypeError, match=re.escape("limit must be `str | None = None`")):
        lanes([router])


async def _app(backend: Backend, tmp_path: Path, *, lane: bool) -> FastAPI:
    app = create_app(make_settings(backend, tmp_path), ManualClock(), run_upkeep=False)
    if not lane:
        app.fast_lane = None
    return app


async def _transcript(app: FastAPI) -> list[tuple[int, str, str]]:
    """The same script of hot requests, good and bad, with every generated id masked."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
            return await _script(api)


async def _script(api: httpx.AsyncClient) -> list[tuple[int, str, str]]:
    ids: dict[str, str] = {}
    r = await api.post(
        "/api/workers/register", json={"hostname": "h", "capacity": 1}, headers=WORKER
    )
    ids[r.json()["workerId"]] = "W"
    r = await api.post(
        "/api/v1/sessions", json={"prompt": "p", "issueIdentifier": "E-1"}, headers=ADMIN
    )
    ids[r.json()["sessionId"]] = "S"
    r = await api.post(Q, json={"name": "e", "config": {"type": "self_hosted"}}, headers=ADMIN)
    env = r.json()["id"]
    ids[env] = "ENV"
    for prompt in ("a", "b"):
        r = await api.post(
            "/api/v1/sessions", json={"prompt": prompt, "environmentId": env}, headers=ADMIN
        )
        ids[r.json()["sessionId"]] = f"S-{prompt}"
        ids["work_" + r.json()["sessionId"].removeprefix("sess_")] = f"WORK-{prompt}"
    r = await api.post("/v1/agents", json={"name": "a", "model": "m"}, headers=ADMIN)
    ids[r.json()["id"]] = "AGENT"
    r = await api.post(
        "/v1/sessions", json={"agent": r.json()["id"], "environment_id": env}, headers=ADMIN
    )
    ids[r.json()["id"]] = "MANAGED"
    ids["work_" + r.json()["id"].removeprefix("sess_")] = "WORK-M"
    worker, session = (k for k, v in ids.items() if v in ("W", "S"))
    work = {v: k for k, v in ids.items()}
    steps: list[tuple[str, str, dict[str, str], Any]] = [
        ("GET", f"/api/workers/{worker}/poll", {}, None),
        ("GET", f"/api/workers/{worker}/poll", WORKER, None),
        ("GET", f"/api/workers/{worker}/poll", WORKER, None),
        ("GET", "/api/workers/nobody/poll", WORKER, None),
        ("GET", "/api/workers/%00/poll", WORKER, None),
        ("PUT", f"/api/workers/{worker}/poll", WORKER, None),
        ("GET", f"/api/workers/{worker}/poll/", WORKER, None),
        ("POST", f"/api/workers/{worker}/heartbeat", WORKER, {"activeCount": -1}),
        ("POST", f"/api/workers/{worker}/heartbeat", WORKER, {"activeCount": 1}),
        ("POST", f"/api/sessions/{session}/status", WORKER, "not json"),
        ("POST", f"/api/sessions/{session}/status", WORKER, {"workerId": worker, "status": "x"}),
        (
            "POST",
            f"/api/sessions/{session}/status",
            WORKER,
            {"workerId": "other", "status": "running"},
        ),
        (
            "POST",
            f"/api/sessions/{session}/status",
            WORKER,
            {"workerId": worker, "status": "completed"},
        ),
        (
            "POST",
            f"/api/sessions/{session}/status",
            WORKER,
            {"workerId": worker, "status": "running"},
        ),
    ]
    for prefix, item in ((A, work["WORK-a"]), (Q, work["WORK-b"])):
        base = f"{prefix}/{env}/work"
        steps += [
            ("GET", f"{base}/poll?block_ms=abc", ADMIN | RID, None),
            ("GET", f"{prefix}/env_nope/work/poll", ADMIN | RID, None),
            ("GET", f"{base}/poll?block_ms=1&block_ms=2", ADMIN | RID, None),
            ("POST", f"{base}/work_nope/ack", ADMIN | RID, None),
            ("POST", f"{base}/{item}/ack", ADMIN | RID, None),
            ("POST", f"{base}/{item}/heartbeat?desired_ttl_seconds=0", ADMIN | RID, None),
            ("POST", f"{base}/{item}/heartbeat", ADMIN | RID, None),
            ("POST", f"{base}/{item}/stop", ADMIN | RID, {"force": "yes"}),
            ("POST", f"{base}/{item}/stop", ADMIN | RID, {}),
        ]
    events = f"/v1/sessions/{work['MANAGED']}/events"  # a managed session's tool results
    steps += [
        ("POST", events, RID, {"events": []}),
        ("POST", events, ADMIN | RID, "not json"),
        ("POST", events, ADMIN | RID, {"events": [{"type": "user.tool_result"}]}),
        (
            "POST",
            events,
            ADMIN | RID,
            {"events": [{"type": "user.tool_result", "tool_use_id": "x"}]},
        ),
        (
            "POST",
            "/v1/sessions/sess_nope/events",
            ADMIN | RID,
            {"events": [{"type": "user.interrupt"}]},
        ),
        ("GET", events, ADMIN | RID, None),
    ]
    # The same route under Qoder's prefix: Bearer only, the same envelope.
    qoder = f"/api/v1/cloud/sessions/{work['MANAGED']}/events"
    x_api_key = {"x-api-key": ADMIN["Authorization"].removeprefix("Bearer ")}
    steps += [
        ("POST", qoder, x_api_key | RID, {"events": [{"type": "user.interrupt"}]}),
        ("POST", qoder, ADMIN | RID, {"events": [{"type": "user.tool_result"}]}),
        (
            "POST",
            "/api/v1/cloud/sessions/sess_nope/events",
            ADMIN | RID,
            {"events": [{"type": "user.interrupt"}]},
        ),
        ("POST", qoder, ADMIN | RID, {"events": []}),
    ]
    transcript = []
    for method, url, headers, body in steps:
        content = body if isinstance(body, str) else None if body is None else json.dumps(body)
        r = await api.request(method, url, headers=headers, content=content)
        text = f"{sorted(r.headers.items())} {r.text}"
        for real, mask in ids.items():
            text = text.replace(real, mask)
        request = f"{method} {url}"
        for real, mask in ids.items():
            request = request.replace(real, mask)
        transcript.append((r.status_code, request, text))
    return transcript


async def test_the_lane_answers_exactly_as_fastapi_does(backend: Backend, tmp_path: Path) -> None:
    with_lane = await _transcript(await _app(backend, tmp_path / "lane", lane=True))
    # The same script on a second, fresh database.
    if backend.schema is None:
        other = Backend("sqlite", f"sqlite:///{tmp_path / 'plain.db'}", None)
    else:
        other = Backend(backend.name, backend.url, backend.schema + "_b")
    try:
        without = await _transcript(await _app(other, tmp_path / "plain", lane=False))
    finally:
        if other.schema:
            await asyncio.to_thread(_drop_schema, other.schema)
    assert [s for s, _, _ in with_lane] == [s for s, _, _ in without]
    for a, b in zip(with_lane, without, strict=True):
        assert a == b
    statuses = {s for s, _, _ in with_lane}
    assert {200, 400, 401, 404, 405} <= statuses  # the script reached the error paths


class NotReached(Exception):
    pass


LaneOnly = tuple[httpx.AsyncClient, FastAPI, str]  # the client, the app, a worker's id


@pytest.fixture
async def lane_only(backend: Backend, tmp_path: Path) -> AsyncIterator[LaneOnly]:
    """The app, with FastAPI's middleware stack (and so its router) replaced by one that
    fails any request passed on to it: only the fast lane can answer. One worker is
    registered."""
    app = create_app(make_settings(backend, tmp_path), ManualClock(), run_upkeep=False)

    async def not_reached(scope: Scope, receive: Receive, send: Send) -> None:
        raise NotReached(scope["path"])

    app.middleware_stack = not_reached
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            worker = await app.state.services.dispatcher.register_worker(
                hostname="h", capacity=1, version=None, projects=None
            )
            yield client, app, worker.id


async def test_the_lane_itself_serves_hot_routes_and_passes_on_the_rest(
    lane_only: LaneOnly,
) -> None:
    client, _, worker = lane_only
    r = await client.get(f"/api/workers/{worker}/poll", headers=WORKER)
    assert r.status_code == 200 and r.json()["work"] == [] and r.json()["preClaimed"] is False
    r = await client.post(f"/api/workers/{worker}/heartbeat", json={}, headers=WORKER)
    assert r.status_code == 400
    assert r.json() == {
        "error": "Bad Request",
        "message": "activeCount must be a non-negative number",
    }
    r = await client.get(f"/api/workers/{worker}/poll")
    assert r.status_code == 401 and r.json()["message"] == "Invalid or missing API key"
    r = await client.get(f"{A}/env_nope/work/poll", headers=ADMIN)
    assert r.status_code == 404 and r.json()["type"] == "error"
    for method, path in [
        ("POST", "/api/workers/register"),  # not hot
        ("PUT", f"/api/workers/{worker}/poll"),  # a method the route does not take
        ("GET", f"/api/workers/{worker}/poll/"),  # not the route's pattern
    ]:
        with pytest.raises(NotReached):
            await client.request(method, path, headers=WORKER)


async def test_an_unexpected_error_in_a_hot_route_is_a_500_envelope(
    lane_only: LaneOnly, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane is ahead of Starlette's server-error middleware, so it sends the 500 itself."""
    client, app, worker = lane_only
    dispatcher = app.state.services.dispatcher

    async def broken(*args: Any) -> int:
        raise RuntimeError("the store went away")

    monkeypatch.setattr(dispatcher, "pending_count", broken)
    r = await client.post(
        f"/api/workers/{worker}/heartbeat", json={"activeCount": 0}, headers=WORKER
    )
    assert r.status_code == 500
    assert r.json() == {"error": "Internal Server Error", "message": "Internal server error"}


async def test_with_fastapi_telemetry_on_fastapi_serves_the_hot_routes(
    lane_only: LaneOnly,
) -> None:
    """So that they are traced like every other route (switched on while the server runs,
    noticed within TELEMETRY_LOOK_EVERY_S)."""
    client, app, worker = lane_only
    await client.get(f"/api/workers/{worker}/poll", headers=WORKER)  # through the lane
    app._telemetry["tracer_provider"] = trace.NoOpTracerProvider()  # type: ignore[attr-defined]
    await asyncio.sleep(TELEMETRY_LOOK_EVERY_S + 0.05)
    with pytest.raises(NotReached):
        await client.get(f"/api/workers/{worker}/poll", headers=WORKER)


def test_the_event_write_routes_are_in_the_lane() -> None:
    """A running session's activity posts and a Veryfront run's AG-UI appends."""
    from shopfloor.api.agentfactory.channel_routes import router as channel_router
    from shopfloor.api.veryfront.routes import router as veryfront_router

    served = sorted(
        (sorted(lane.methods)[0], lane.route.path)
        for lane in lanes([channel_router, veryfront_router])
    )
    assert served == [
        ("POST", "/api/sessions/{session_id}/activity"),
        ("POST", "/conversations/{conversation_id}/agent-runs/{run_id}/events"),
        ("POST", "/conversations/{conversation_id}/runs/{run_id}/events"),
    ]


async def test_the_lane_serves_event_writes_with_each_protocols_errors(
    lane_only: LaneOnly,
) -> None:
    client, _, worker = lane_only
    activity = {"workerId": worker, "activity": {"type": "thought", "content": "x"}}
    r = await client.post("/api/sessions/sess_nope/activity", json=activity)
    assert r.status_code == 401 and r.json()["message"] == "Invalid or missing API key"
    r = await client.post("/api/sessions/sess_nope/activity", json={}, headers=WORKER)
    assert r.status_code == 400 and r.json()["message"] == "workerId is required"
    r = await client.post("/api/sessions/sess_nope/activity", json=activity, headers=WORKER)
    assert r.status_code == 404 and r.json()["error"] == "Not Found"
    conversation = "/conversations/00000000-0000-0000-0000-000000000000"
    events = {"events": [{"type": "TEXT_MESSAGE_CONTENT", "delta": "x"}]}
    r = await client.post(f"{conversation}/runs/run_nope/events", json=events)
    assert r.status_code == 401 and set(r.json()) == {"detail", "error"}
    r = await client.post(f"{conversation}/agent-runs/run_nope/events", json={}, headers=ADMIN)
    assert r.status_code == 400 and r.json()["detail"] == "events must be an array of 1-100 events"
    r = await client.post(f"{conversation}/runs/run_nope/events", json=events, headers=ADMIN)
    assert r.status_code == 404 and set(r.json()) == {"detail", "error"}
