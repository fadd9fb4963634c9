"""Bad input: each missing or malformed field gets a 400 naming it, and changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.agentfactory.helpers import ADMIN, WORKER, enqueue, poll, register

W, S = "{worker}", "{session}"

# (method, path, body or raw text, exact message)
CASES: list[tuple[str, str, Any, str]] = [
    ("POST", "/api/workers/register", {"capacity": 1}, "hostname is required"),
    ("POST", "/api/workers/register", {"hostname": "", "capacity": 1}, "hostname is required"),
    ("POST", "/api/workers/register", {"hostname": 7, "capacity": 1}, "hostname is required"),
    ("POST", "/api/workers/register", {"hostname": "h"}, "capacity must be a positive number"),
    (
        "POST",
        "/api/workers/register",
        {"hostname": "h", "capacity": 0},
        "capacity must be a positive number",
    ),
    (
        "POST",
        "/api/workers/register",
        {"hostname": "h", "capacity": "3"},
        "capacity must be a positive number",
    ),
    (
        "POST",
        "/api/workers/register",
        {"hostname": "h", "capacity": True},
        "capacity must be a positive number",
    ),
    (
        "POST",
        "/api/workers/register",
        {"hostname": "h", "capacity": 1, "projects": "A"},
        "projects must be an array of strings",
    ),
    (
        "POST",
        "/api/workers/register",
        {"hostname": "h", "capacity": 1, "projects": [1]},
        "projects must be an array of strings",
    ),
    ("POST", "/api/workers/register", "{not json", "Invalid JSON body"),
    ("POST", "/api/workers/register", "[1, 2]", "Request body must be a JSON object"),
    ("POST", "/api/workers/register", "", "Request body must be a JSON object"),
    ("POST", f"/api/workers/{W}/heartbeat", {}, "activeCount must be a non-negative number"),
    (
        "POST",
        f"/api/workers/{W}/heartbeat",
        {"activeCount": -1},
        "activeCount must be a non-negative number",
    ),
    (
        "POST",
        f"/api/workers/{W}/heartbeat",
        {"activeCount": "2"},
        "activeCount must be a non-negative number",
    ),
    ("POST", f"/api/sessions/{S}/status", {"status": "running"}, "workerId is required"),
    (
        "POST",
        f"/api/sessions/{S}/status",
        {"workerId": W, "status": "done"},
        "status must be one of: running, finalizing, completed, failed, stopped",
    ),
    (
        "POST",
        f"/api/sessions/{S}/status",
        {"workerId": W},
        "status must be one of: running, finalizing, completed, failed, stopped",
    ),
    (
        "POST",
        f"/api/sessions/{S}/status",
        {"workerId": W, "status": "completed", "totalCostUsd": "1"},
        "totalCostUsd must be a non-negative number",
    ),
    (
        "POST",
        f"/api/sessions/{S}/status",
        {"workerId": W, "status": "completed", "inputTokens": 1.5},
        "inputTokens must be a non-negative integer",
    ),
    (
        "POST",
        f"/api/sessions/{S}/status",
        {"workerId": W, "status": "running", "providerSessionId": 5},
        "providerSessionId must be a string",
    ),
    (
        "POST",
        f"/api/sessions/{S}/status",
        {"workerId": W, "status": "failed", "error": 3},
        "error must be an object with a message string",
    ),
    ("POST", f"/api/sessions/{S}/claim", {}, "workerId is required"),
    ("POST", f"/api/sessions/{S}/nack", {"reason": "x"}, "workerId is required"),
    (
        "POST",
        f"/api/sessions/{S}/transfer-ownership",
        {"newWorkerId": W},
        "newWorkerId and oldWorkerId are required",
    ),
    (
        "POST",
        f"/api/sessions/{S}/transfer-ownership",
        {"oldWorkerId": W},
        "newWorkerId and oldWorkerId are required",
    ),
]

OPERATOR_CASES: list[tuple[Any, str]] = [
    ({}, "prompt: one of prompt, issueId or issueIdentifier is required"),
    ({"prompt": "x", "priority": 0}, "priority: Input should be greater than or equal to 1"),
    ({"prompt": "x", "priority": 10}, "priority: Input should be less than or equal to 9"),
    ({"prompt": "x", "priority": "2"}, "priority: Input should be a valid integer"),
    ({"prompt": 5}, "prompt: Input should be a valid string"),
    ({"prompt": "x", "workType": ""}, "workType: String should have at least 1 character"),
    ({"prompt": "x", "colour": "red"}, "colour: Extra inputs are not permitted"),
    ("{oops", "Invalid JSON body"),
    ("[]", "Request body must be a JSON object"),
]


async def snapshot(api: httpx.AsyncClient) -> tuple[Any, Any]:
    sessions = (await api.get("/api/v1/sessions", headers=ADMIN)).json()
    workers = (await api.get("/api/v1/workers", headers=ADMIN)).json()
    return sessions, workers


def _fill(value: Any, worker: str, session: str) -> Any:
    if isinstance(value, str):
        return value.replace(W, worker).replace(S, session)
    if isinstance(value, dict):
        return {k: _fill(v, worker, session) for k, v in value.items()}
    return value


async def _send(
    api: httpx.AsyncClient, method: str, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    if isinstance(body, str):
        return await api.request(
            method,
            path,
            content=body.encode(),
            headers={**headers, "Content-Type": "application/json"},
        )
    return await api.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    CASES,
    ids=[f"{c[1].rsplit('/', 1)[-1]}:{c[3][:40]}" for c in CASES],
)
async def test_worker_route_rejects_bad_input(
    api: httpx.AsyncClient, method: str, path: str, body: Any, message: str
) -> None:
    session = await enqueue(api)
    worker = await register(api)
    await poll(api, worker)
    before = await snapshot(api)
    r = await _send(
        api,
        method,
        _fill(path, worker, session["sessionId"]),
        _fill(body, worker, session["sessionId"]),
        WORKER,
    )
    assert r.status_code == 400
    assert r.json() == {"error": "Bad Request", "message": message}
    assert await snapshot(api) == before


@pytest.mark.parametrize(
    ("body", "message"), OPERATOR_CASES, ids=[c[1][:40] for c in OPERATOR_CASES]
)
async def test_operator_create_rejects_bad_input(
    api: httpx.AsyncClient, body: Any, message: str
) -> None:
    before = await snapshot(api)
    r = await _send(api, "POST", "/api/v1/sessions", body, ADMIN)
    assert r.status_code == 400
    assert r.json() == {"error": "Bad Request", "message": message}
    assert await snapshot(api) == before


async def test_operator_api_needs_the_admin_key(api: httpx.AsyncClient) -> None:
    for headers in ({}, WORKER, {"Authorization": "Bearer nope"}):
        r = await api.get("/api/v1/sessions", headers=headers)
        assert r.status_code == 401
        assert r.json() == {"error": "Unauthorized", "message": "Invalid or missing admin API key"}


async def test_operator_list_rejects_an_unknown_status(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/sessions", params={"status": "done"}, headers=ADMIN)
    assert r.status_code == 400 and r.json()["message"].startswith("status: must be one of")


async def test_duplicate_session_id_conflicts_and_keeps_the_first(api: httpx.AsyncClient) -> None:
    first = await enqueue(api, sessionId="linear-session-1", prompt="first")
    r = await api.post(
        "/api/v1/sessions", json={"sessionId": "linear-session-1", "prompt": "2nd"}, headers=ADMIN
    )
    assert r.status_code == 409
    kept = (await api.get("/api/v1/sessions/linear-session-1", headers=ADMIN)).json()
    assert kept["prompt"] == "first" and kept["createdAt"] == first["createdAt"]


async def test_unknown_routes_use_the_same_envelope(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/nowhere", headers=WORKER)
    assert r.status_code == 404 and r.json() == {"error": "Not Found", "message": "Not Found"}
