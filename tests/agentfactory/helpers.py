"""Small helpers for driving the AgentFactory protocol in tests."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY, WORKER_KEY

WORKER = {"Authorization": f"Bearer {WORKER_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def register(api: httpx.AsyncClient, capacity: int = 3, **extra: Any) -> str:
    body = {"hostname": "test-host", "capacity": capacity, "version": "1.0.0", **extra}
    r = await api.post("/api/workers/register", json=body, headers=WORKER)
    assert r.status_code == 201, r.text
    worker_id: str = r.json()["workerId"]
    return worker_id


_issues = itertools.count(1)


async def enqueue(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """Queue a session; each gets its own issue unless the caller names one (issue locks
    park a second live session on the same issue)."""
    body = {"issueIdentifier": f"ENG-{next(_issues)}", "prompt": "do it", **fields}
    r = await api.post("/api/v1/sessions", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    session: dict[str, Any] = r.json()
    return session


async def poll(api: httpx.AsyncClient, worker_id: str) -> dict[str, Any]:
    r = await api.get(f"/api/workers/{worker_id}/poll", headers=WORKER)
    assert r.status_code == 200, r.text
    reply: dict[str, Any] = r.json()
    return reply


async def status(
    api: httpx.AsyncClient, session_id: str, worker_id: str, state: str, **extra: Any
) -> httpx.Response:
    body = {"workerId": worker_id, "status": state, **extra}
    return await api.post(f"/api/sessions/{session_id}/status", json=body, headers=WORKER)


async def operator_view(api: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    r = await api.get(f"/api/v1/sessions/{session_id}", headers=ADMIN)
    assert r.status_code == 200, r.text
    view: dict[str, Any] = r.json()
    return view
