"""PostgreSQL stores NUL in neither text nor JSONB: every protocol refuses it at the edge with
its own 400 body instead of failing in the database (which would be a 500)."""

from __future__ import annotations

import httpx
import pytest

from tests.agentfactory.helpers import ADMIN, WORKER, enqueue, poll, register

NUL_BODY = "Request body must not contain the NUL character (\\u0000)"
NUL_URL = "The URL must not contain the NUL character (%00)"


async def test_agentfactory_body_with_nul(api: httpx.AsyncClient) -> None:
    s = await enqueue(api)
    wid = await register(api)
    await poll(api, wid)
    r = await api.post(
        f"/api/sessions/{s['sessionId']}/status",
        headers=WORKER,
        json={"workerId": wid, "status": "running", "worktreePath": "/wt/a\x00b"},
    )
    assert r.status_code == 400
    assert r.json() == {"error": "Bad Request", "message": NUL_BODY}
    view = (await api.get(f"/api/v1/sessions/{s['sessionId']}", headers=ADMIN)).json()
    assert view["status"] == "claimed" and view["worktreePath"] is None


async def test_operator_body_with_nul(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/v1/sessions", headers=ADMIN, json={"prompt": "a\x00b"})
    assert r.status_code == 400
    assert r.json()["message"] == "prompt: Value error, must not contain the NUL character"
    assert (await api.get("/api/v1/sessions", headers=ADMIN)).json()["sessions"] == []


@pytest.mark.parametrize(
    ("path", "headers", "envelope"),
    [
        ("/api/sessions/sess_a%00b/status", WORKER, "agentfactory"),
        ("/api/v1/sessions?projectName=a%00b", ADMIN, "agentfactory"),
        ("/v1/environments/env_a%00b/work/poll", ADMIN, "environments"),
        ("/runs/run_a%00b", ADMIN, "veryfront"),
    ],
)
async def test_url_with_nul(
    api: httpx.AsyncClient, path: str, headers: dict[str, str], envelope: str
) -> None:
    r = await api.get(path, headers=headers)
    assert r.status_code == 400
    body = r.json()
    if envelope == "agentfactory":
        assert body == {"error": "Bad Request", "message": NUL_URL}
    elif envelope == "environments":
        assert body["type"] == "error" and body["error"]["message"] == NUL_URL
        assert body["error"]["type"] == "invalid_request_error"
    else:
        assert body == {"detail": NUL_URL, "error": "Bad Request"}
