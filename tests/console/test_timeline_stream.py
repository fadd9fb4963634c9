"""The operator API's live timeline, GET /api/v1/sessions/{id}/events (server-sent events,
resumable with Last-Event-ID): what it sends, who may follow it, and, against a real server
process, an entry written while a client follows arrives at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agentfactory.helpers import ADMIN, WORKER, enqueue
from tests.conftest import Backend
from tests.platform.test_tenancy import key, new_org, queue
from tests.processes.server import server_env, start_server, stop_cleanly

SSE = {**ADMIN, "Accept": "text/event-stream"}


def frames(text: str) -> list[dict[str, Any]]:
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append({**fields, "data": json.loads(fields["data"])})
    return found


async def test_the_stream_sends_the_timeline_then_the_end(api: httpx.AsyncClient) -> None:
    sid = (await enqueue(api))["sessionId"]
    await api.post(f"/api/v1/sessions/{sid}/stop", json={"reason": "done"}, headers=ADMIN)
    r = await api.get(f"/api/v1/sessions/{sid}/events", headers=SSE)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    sent = frames(r.text)
    timeline = (await api.get(f"/api/v1/sessions/{sid}/activity", headers=ADMIN)).json()
    assert [f["data"] for f in sent[:-1]] == timeline["activities"]
    assert [int(f["id"]) for f in sent[:-1]] == [e["id"] for e in timeline["activities"]]
    assert sent[-1] == {"event": "end", "data": {"sessionId": sid, "status": "stopped"}}
    resumed = await api.get(
        f"/api/v1/sessions/{sid}/events", headers={**SSE, "Last-Event-ID": sent[-3]["id"]}
    )
    assert [f["event"] for f in frames(resumed.text)] == ["timeline", "end"]
    by_query = await api.get(f"/api/v1/sessions/{sid}/events?after={sent[-2]['id']}", headers=SSE)
    assert [f["event"] for f in frames(by_query.text)] == ["end"]
    bad = await api.get(f"/api/v1/sessions/{sid}/events", headers={**SSE, "Last-Event-ID": "x1"})
    assert bad.status_code == 400 and bad.json()["message"].startswith("Last-Event-ID:")
    # Without that Accept, one JSON page: what /activity answers.
    page = await api.get(f"/api/v1/sessions/{sid}/events", headers=ADMIN)
    assert page.json() == timeline


async def test_only_the_sessions_org_and_projects_may_follow(api: httpx.AsyncClient) -> None:
    await new_org(api, "a")
    await new_org(api, "b")
    key_a = await key(api, "a", scopes=["*"])
    key_b = await key(api, "b", scopes=["*"])
    other_project = await key(api, "a", projects=["web"], scopes=["sessions:read"])
    no_read = await key(api, "a", scopes=["sessions:write"])
    sid = (await queue(api, key_a, projectName="api")).json()["sessionId"]
    path = f"/api/v1/sessions/{sid}/events"
    sse = {"Accept": "text/event-stream"}
    assert (await api.get(path, headers=sse)).status_code == 401
    assert (await api.get(path, headers={**key_b, **sse})).status_code == 404
    assert (await api.get(path, headers={**other_project, **sse})).status_code == 404
    assert (await api.get(path, headers={**no_read, **sse})).status_code == 403
    assert (await api.get(path, headers=key_b)).status_code == 404
    await api.post(f"/api/v1/sessions/{sid}/stop", json={}, headers=key_a)
    assert (await api.get(path, headers={**key_a, **sse})).status_code == 200


@pytest.mark.slow
async def test_an_entry_reaches_a_follower_at_once(tmp_path: Path) -> None:
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    server = start_server(
        server_env(backend, tmp_path / "data", SHOPFLOOR_POLL_HOLD_MS="0"), tmp_path / "log"
    )
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            worker = (
                await http.post(
                    "/api/workers/register", json={"hostname": "h", "capacity": 1}, headers=WORKER
                )
            ).json()["workerId"]
            sid = (await http.post("/api/v1/sessions", json={"prompt": "p"}, headers=ADMIN)).json()[
                "sessionId"
            ]
            await http.get(f"/api/workers/{worker}/poll", headers=WORKER)
            async with http.stream("GET", f"/api/v1/sessions/{sid}/events", headers=SSE) as s:
                lines = s.aiter_lines()
                seen: list[str] = []
                async for line in lines:  # pending, claimed
                    seen.append(line)
                    if line.startswith("data:") and '"claimed"' in line:
                        break
                body = {"workerId": worker, "activity": {"type": "thought", "content": "hmm"}}
                await http.post(f"/api/sessions/{sid}/activity", json=body, headers=WORKER)
                async for line in lines:
                    if line.startswith("data:"):
                        assert json.loads(line[5:])["data"]["content"] == "hmm"
                        break
    finally:
        stop_cleanly(server)
