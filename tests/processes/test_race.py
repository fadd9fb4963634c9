"""20 worker processes race over 500 sessions: each is claimed exactly once, none is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

from tests.conftest import ADMIN_KEY, WORKER_KEY
from tests.processes.server import ServerProcess

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
POLLERS = 20
SESSIONS = 500


def test_concurrent_pollers_claim_each_session_exactly_once(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
        created = [
            http.post(
                "/api/v1/sessions", json={"prompt": f"job {i}", "priority": 1 + i % 5}
            ).json()["sessionId"]
            for i in range(SESSIONS)
        ]
    poller = str(Path(__file__).with_name("poller.py"))
    procs = [
        subprocess.Popen(
            [sys.executable, poller, server.url, WORKER_KEY, str(1 + i % 5)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(POLLERS)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))

    claims = Counter(sid for r in results for sid in r["claimed"])
    assert set(claims) == set(created)  # none lost
    assert max(claims.values()) == 1  # none claimed twice
    assert sum(1 for r in results if r["claimed"]) > 1  # the pollers really competed

    claimer = {sid: r["worker"] for r in results for sid in r["claimed"]}
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
        done = http.get("/api/v1/sessions", params={"status": "completed", "limit": 500}).json()
        assert len(done["sessions"]) == SESSIONS
        for sid in created[::25]:
            history = http.get(f"/api/v1/sessions/{sid}").json()["history"]
            held_by = {h["workerId"] for h in history if h["status"] != "pending"}
            assert held_by == {claimer[sid]}
            assert [h["status"] for h in history].count("claimed") == 1
