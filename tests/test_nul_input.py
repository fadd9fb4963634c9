"""PostgreSQL stores NUL in neither text nor JSONB: every protocol refuses it at the edge with
its own 400 body instead of failing in the database (which would be a 500)."""

from __future__ import annotations

import httpx
import pytest

from tests.agentfactory.helpers import ADMIN, WORKER, enqueue, poll, register
from tests.veryfront import helpers as vf

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


# JSON may carry half of a UTF-16 pair alone, which no UTF-8 text (and no database) can hold.
LONE = b'"a\\ud800b"'


async def test_agentfactory_body_with_a_lone_surrogate(api: httpx.AsyncClient) -> None:
    s = await enqueue(api)
    wid = await register(api)
    await poll(api, wid)
    body = b'{"workerId": "%s", "type": "thought", "content": %s}' % (wid.encode(), LONE)
    r = await api.post(
        f"/api/sessions/{s['sessionId']}/activity",
        headers={**WORKER, "content-type": "application/json"},
        content=body,
    )
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith("content must not contain a lone surrogate")
    timeline = (await api.get(f"/api/v1/sessions/{s['sessionId']}", headers=ADMIN)).json()
    assert all(e.get("type") != "thought" for e in timeline.get("history", []))


async def test_veryfront_append_with_a_lone_surrogate(api: httpx.AsyncClient) -> None:
    await vf.admit(api, "wk-surrogate")
    run = await vf.claim(api, *(await vf.register(api, "wk-surrogate")))
    assert run is not None
    path = f"/conversations/{run['conversation_id']}/runs/{run['run_id']}/events"
    body = b'{"events": [{"type": "TEXT_MESSAGE_CONTENT", "delta": %s}]}' % LONE
    r = await api.post(path, headers={**vf.ADMIN, "content-type": "application/json"}, content=body)
    assert r.status_code == 400, r.text
    assert "events[0].delta must not contain a lone surrogate" in r.json()["detail"]
    page = (await api.get(f"/runs/{run['run_id']}/events", headers=vf.ADMIN)).json()
    assert page["data"] == []
