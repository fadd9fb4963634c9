"""Small helpers for environment API tests over an httpx client (in-process or real)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ADMIN_KEY

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
Q = "/api/v1/cloud/environments"  # Qoder path
A = "/v1/environments"  # Anthropic path


async def new_environment(api: httpx.AsyncClient, name: str = "shop") -> str:
    r = await api.post(Q, json={"name": name, "config": {"type": "self_hosted"}}, headers=ADMIN)
    assert r.status_code == 200, r.text
    env_id: str = r.json()["id"]
    return env_id


async def enqueue(api: httpx.AsyncClient, env_id: str, **fields: Any) -> str:
    body = {"prompt": "do it", "environmentId": env_id, **fields}
    r = await api.post("/api/v1/sessions", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    session_id: str = r.json()["sessionId"]
    return session_id


def work_id(session_id: str) -> str:
    return "work_" + session_id.removeprefix("sess_")


def assert_error(r: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    """The exact envelope: {"type": "error", "request_id": …, "error": {"type", "message"}}."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"type", "request_id", "error"}
    assert body["type"] == "error"
    assert isinstance(body["request_id"], str) and body["request_id"]
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert set(body["error"]) <= {"type", "message", "details"}
    assert r.headers["request-id"] == body["request_id"]
    return body
