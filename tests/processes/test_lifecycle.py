"""The TS af-worker's calls, in the order of protocol notes §2.1, against a real server."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_KEY, WORKER_KEY, Backend
from tests.processes.server import ServerProcess, server_env, start_server, stop_cleanly

WORKER = {"Authorization": f"Bearer {WORKER_KEY}", "Content-Type": "application/json"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def test_worker_lifecycle_in_client_call_order(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        created = http.post(
            "/api/v1/sessions",
            headers=ADMIN,
            json={
                "issueId": "iss-1",
                "issueIdentifier": "ENG-1",
                "workType": "research",
                "prompt": "Investigate",
                "agentId": "agent-1",
                "title": "Flaky login",
            },
        )
        assert created.status_code == 201
        sid = created.json()["sessionId"]

        reg = http.post(
            "/api/workers/register",
            headers=WORKER,
            json={"hostname": "box", "capacity": 3, "version": "1.0.0"},
        )
        assert reg.status_code == 201
        wid = reg.json()["workerId"]
        assert http.get("/api/config", headers=WORKER).json() == {"projects": []}
        hb = http.post(
            f"/api/workers/{wid}/heartbeat",
            headers=WORKER,
            json={"activeCount": 0, "load": {"cpu": 0.1, "memory": 0.5}},
        )
        assert hb.json()["pendingWorkCount"] == 1

        polled = http.get(f"/api/workers/{wid}/poll", headers=WORKER).json()
        assert polled["preClaimed"] is True and polled["claimedSessionIds"] == [sid]
        (work,) = polled["work"]
        assert work["issueIdentifier"] == "ENG-1" and work["workType"] == "research"
        assert work["priority"] == 4 and work["prompt"] == "Investigate"

        def report(status: str, **extra: object) -> dict[str, object]:
            r = http.post(
                f"/api/sessions/{sid}/status",
                headers=WORKER,
                json={"workerId": wid, "status": status, **extra},
            )
            assert r.status_code == 200, r.text
            body: dict[str, object] = r.json()
            return body

        report("running")
        report("running", worktreePath="/repo.wt/ENG-1-abc")
        report("running", providerSessionId="a2a-sess-1")
        seen = http.get(f"/api/sessions/{sid}/status", headers=WORKER).json()
        assert (seen["status"], seen["workerId"]) == ("running", wid)
        http.post(f"/api/workers/{wid}/heartbeat", headers=WORKER, json={"activeCount": 1})
        report("finalizing")
        done = report(
            "completed",
            providerSessionId="a2a-sess-1",
            worktreePath="/repo.wt/ENG-1-abc",
            totalCostUsd=0.01,
            inputTokens=10,
            outputTokens=5,
        )
        assert done["updated"] is True

        bye = http.delete(f"/api/workers/{wid}", headers=WORKER)
        assert bye.json() == {"deregistered": True, "unclaimedSessions": []}

        view = http.get(f"/api/v1/sessions/{sid}", headers=ADMIN).json()
        assert view["status"] == "completed" and view["workerId"] == wid
        assert [h["status"] for h in view["history"]] == [
            "pending",
            "claimed",
            "running",
            "finalizing",
            "completed",
        ]
        workers = http.get("/api/v1/workers", headers=ADMIN).json()
        assert [(w["workerId"], w["status"]) for w in workers] == [(wid, "deregistered")]


def test_claim_ttl_and_reap_interval_settings_reach_the_server(
    backend: Backend, tmp_path: Path
) -> None:
    """A pre-claimed session that is never reported running returns to the queue after
    SHOPFLOOR_CLAIM_TTL_SECONDS, found by a reaper pass every SHOPFLOOR_REAP_INTERVAL_SECONDS."""
    env = server_env(
        backend,
        tmp_path / "data",
        SHOPFLOOR_CLAIM_TTL_SECONDS="1",
        SHOPFLOOR_REAP_INTERVAL_SECONDS="0.2",
    )
    server = start_server(env, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            sid = http.post("/api/v1/sessions", headers=ADMIN, json={"prompt": "x"}).json()[
                "sessionId"
            ]
            wid = http.post(
                "/api/workers/register", headers=WORKER, json={"hostname": "h", "capacity": 1}
            ).json()["workerId"]
            assert http.get(f"/api/workers/{wid}/poll", headers=WORKER).json()[
                "claimedSessionIds"
            ] == [sid]
            deadline = time.monotonic() + 20
            status = "claimed"
            while status == "claimed" and time.monotonic() < deadline:
                time.sleep(0.2)
                status = http.get(f"/api/v1/sessions/{sid}", headers=ADMIN).json()["status"]
            assert status == "pending"
            history = http.get(f"/api/v1/sessions/{sid}", headers=ADMIN).json()["history"]
            assert history[-1]["reason"] == "lease expired"
    finally:
        stop_cleanly(server)
