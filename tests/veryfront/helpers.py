"""Small helpers for driving the Veryfront routes in tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY

PROJECT = "demo"
KIND = "shopfloor-test"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(
    api: httpx.AsyncClient,
    worker_key: str | None = None,
    *,
    kind: str = KIND,
    project: str = PROJECT,
) -> tuple[str, str]:
    """Register a worker; returns (worker id, worker token)."""
    reply = await api.post(
        f"/agent-workers/projects/{project}/workers",
        headers=ADMIN,
        json={
            "implementation_kind": kind,
            "implementation_display_name": "Test worker",
            "worker_key": worker_key or f"key-{uuid.uuid4().hex[:8]}",
        },
    )
    assert reply.status_code == 201, reply.text
    body = reply.json()
    return body["worker"]["id"], body["token"]


async def admit(
    api: httpx.AsyncClient,
    worker_key: str | None,
    *,
    kind: str = KIND,
    project: str = PROJECT,
    text: str = "Say hello",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Admit a run with config.agent_admission (or, without worker_key, the canonical form)."""
    body: dict[str, Any] = {"project_id": project, "input": text, **extra}
    if worker_key is not None:
        body["config"] = {
            "agent_admission": {
                "mode": "worker",
                "implementation_kind": kind,
                "worker_key": worker_key,
            }
        }
    else:
        body.update(kind="agent", request={"implementation_kind": kind, "agent_id": "agent-1"})
    reply = await api.post("/runs", headers={**ADMIN, **(headers or {})}, json=body)
    assert reply.status_code == 202, reply.text
    result: dict[str, Any] = reply.json()
    return result


async def claim(
    api: httpx.AsyncClient, worker_id: str, token: str, seconds: int = 30
) -> dict[str, Any] | None:
    reply = await api.post(
        f"/agent-workers/workers/{worker_id}/claim",
        headers=bearer(token),
        json={"lease_duration_seconds": seconds},
    )
    assert reply.status_code == 200, reply.text
    run: dict[str, Any] | None = reply.json()["run"]
    return run


async def append(
    api: httpx.AsyncClient,
    run: dict[str, Any],
    events: list[dict[str, Any]],
    token: str = ADMIN_KEY,
    **cursor: int,
) -> httpx.Response:
    return await api.post(
        f"/conversations/{run['conversation_id']}/runs/{run['run_id']}/events",
        headers=bearer(token),
        json={"events": events, **cursor},
    )


def text_events(n: int = 3) -> list[dict[str, Any]]:
    mid = str(uuid.uuid4())
    return [
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": mid, "delta": f"part {i}"} for i in range(n)
    ]
