"""Interview token-delta frames (rensei-platform.md §1.5) relayed to server-sent-event
watchers, and the queued session detail for cloud runners (§1.10): a session's own worker
posts, its organisation's key watches, nobody else does either."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agentfactory.helpers import ADMIN
from tests.conftest import Backend
from tests.platform.test_router import runtime_token
from tests.platform.test_tenancy import bearer, key, new_org, queue
from tests.processes.server import ServerProcess, server_env, start_server, stop_cleanly


def watch(
    server: ServerProcess,
    sid: str,
    headers: dict[str, str],
    seen: list[Any],
    ready: threading.Event,
) -> None:
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream("GET", f"/api/public/sessions/{sid}/token-stream", headers=headers) as s,
    ):
        assert s.status_code == 200, s.read()
        for line in s.iter_lines():
            if line == ": stream open":
                ready.set()
            if line.startswith("data: "):
                seen.append(json.loads(line.removeprefix("data: ")))


@pytest.mark.slow
def test_frames_reach_a_watcher(backend: Backend, tmp_path: Path) -> None:
    env = server_env(backend, tmp_path / "data", SHOPFLOOR_STREAM_KEEPALIVE_SECONDS="1")
    server = start_server(env, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, headers=ADMIN, timeout=10) as api:
            api.post("/api/v1/orgs", json={"slug": "acme"})
            minted = api.post(
                "/api/org/acme/keys", json={"name": "d", "keyType": "worker_registration"}
            ).json()
            worker = api.post(
                "/api/workers/register",
                json={"hostname": "h", "capacity": 1},
                headers=bearer(minted["key"]["fullKey"]),
            ).json()
            jwt = bearer(worker["runtimeToken"])
            sid = api.post("/api/v1/sessions", json={"prompt": "p", "orgId": "acme"}).json()[
                "sessionId"
            ]
            api.get(f"/api/workers/{worker['workerId']}/poll", headers=jwt)
            reader = api.post(
                "/api/org/acme/keys", json={"name": "r", "scopes": ["sessions:read"]}
            ).json()["key"]["fullKey"]
            seen: list[Any] = []
            ready = threading.Event()
            thread = threading.Thread(target=watch, args=(server, sid, bearer(reader), seen, ready))
            thread.start()
            assert ready.wait(10)
            frames = [{"type": "text", "delta": "Hel"}, {"type": "text", "delta": "lo"}]
            posted = api.post(
                f"/api/sessions/{sid}/token-delta",
                json={"turnId": "t1", "frames": frames},
                headers=jwt,
            )
            assert posted.json() == {"published": 2}, posted.text
            for _ in range(100):
                if seen:
                    break
                threading.Event().wait(0.05)
            assert seen == [{"turnId": "t1", "frames": frames}]
            api.post(f"/api/v1/sessions/{sid}/stop", json={})
            thread.join(15)
            assert not thread.is_alive()
    finally:
        stop_cleanly(server)


async def test_only_the_sessions_worker_and_organisation(api: httpx.AsyncClient) -> None:
    await new_org(api, "a")
    await new_org(api, "b")
    sid = (await queue(api, ADMIN, orgId="a")).json()["sessionId"]
    _, worker_b = await runtime_token(api, "b")
    body = {"turnId": "t", "frames": [{"delta": "x"}]}
    refused = await api.post(f"/api/sessions/{sid}/token-delta", json=body, headers=worker_b)
    assert refused.status_code == 404
    key_b = await key(api, "b")
    hidden = await api.get(f"/api/public/sessions/{sid}/token-stream", headers=key_b)
    assert (hidden.status_code, hidden.json()) == (404, {"error": "Session not found"})
    workers_only = await key(api, "a", scopes=["workers:read"])
    scoped = await api.get(f"/api/public/sessions/{sid}/token-stream", headers=workers_only)
    assert scoped.json() == {"error": "This key lacks the sessions:read scope"}
    # Not its worker (the session is not claimed): refused.
    _, worker_a = await runtime_token(api, "a")
    foreign = await api.post(f"/api/sessions/{sid}/token-delta", json=body, headers=worker_a)
    assert foreign.status_code == 403


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"frames": []}, "turnId: Field required"),
        ({"turnId": "t", "frames": "x"}, "frames: Input should be a valid list"),
        ({"turnId": "t", "frames": [1]}, "frames.0: Input should be a valid dictionary"),
    ],
)
async def test_bad_frames_name_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    await new_org(api, "a")
    sid = (await queue(api, ADMIN, orgId="a")).json()["sessionId"]
    _, worker = await runtime_token(api, "a")
    reply = await api.post(f"/api/sessions/{sid}/token-delta", json=body, headers=worker)
    assert (reply.status_code, reply.json()["message"]) == (400, message)


async def test_queued_session_detail_for_cloud_runners(api: httpx.AsyncClient) -> None:
    await new_org(api, "a")
    await new_org(api, "b")
    sid = (
        await queue(api, ADMIN, orgId="a", issueIdentifier="ENG-9", branch="feat/x", workType="qa")
    ).json()["sessionId"]
    worker, token = await runtime_token(api, "a")
    _, other = await runtime_token(api, "b")
    detail = await api.get(f"/api/daemon/sessions/{sid}", headers=token)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert (body["sessionId"], body["linearSessionId"], body["issueIdentifier"]) == (
        sid,
        sid,
        "ENG-9",
    )
    assert body["branch"] == "feat/x" and body["workType"] == "qa" and body["prompt"] == "p"
    assert body["platformUrl"] == "http://shopfloor" and body["organizationId"].startswith("org_")
    assert (await api.get(f"/api/daemon/sessions/{sid}", headers=other)).status_code == 404
    await api.get(f"/api/workers/{worker}/poll", headers=token)
    claimed = await api.get(f"/api/daemon/sessions/{sid}", headers=token)
    assert (claimed.status_code, claimed.json()) == (404, {"error": "Session not found"})
