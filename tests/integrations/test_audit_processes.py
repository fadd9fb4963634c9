"""Session claims and ends audited by real `shopfloor serve` processes on PostgreSQL: two
processes serve the claims and ends of one organisation while both run the audit appender;
the organisation keeps one chain (sequence 1..n, no gap, each claim and end once), valid by
the server's verify and by the JWKS alone."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopfloor.service import audit_chain
from tests.agentfactory.helpers import ADMIN, WORKER
from tests.conftest import Backend
from tests.processes.server import ServerProcess, server_env, start_server

pytestmark = pytest.mark.slow

SESSIONS = 150


def export(server: ServerProcess) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = httpx.get(
            server.url + "/api/audit", headers=ADMIN, params={"limit": 200, "offset": len(out)}
        ).json()["events"]
        out.extend(page)
        if len(page) < 200:
            return out


def work(poll_at: ServerProcess, report_at: ServerProcess) -> int:
    """One AgentFactory worker: registers, claims on one process and reports on the other,
    until the queue is empty."""
    with httpx.Client(headers=WORKER, timeout=30) as client:
        body = {"hostname": "h", "capacity": 5, "version": "1"}
        worker = client.post(poll_at.url + "/api/workers/register", json=body).json()["workerId"]
        done = 0
        while items := client.get(f"{poll_at.url}/api/workers/{worker}/poll").json()["work"]:
            for item in items:
                reply = client.post(
                    f"{report_at.url}/api/sessions/{item['sessionId']}/status",
                    json={"workerId": worker, "status": "completed"},
                )
                assert reply.status_code == 200, reply.text
                done += 1
        return done


def test_two_processes_append_one_chain(postgres: Backend, tmp_path: Path) -> None:
    environment = server_env(postgres, tmp_path / "data", SHOPFLOOR_AUDIT_APPEND_INTERVAL_MS="5")
    servers = [start_server(environment, tmp_path / f"s{i}.log") for i in range(2)]
    try:
        with httpx.Client(headers=ADMIN) as client:
            for n in range(SESSIONS):
                body = {"prompt": "p", "issueIdentifier": f"ENG-{n}"}
                reply = client.post(servers[n % 2].url + "/api/v1/sessions", json=body)
                assert reply.status_code == 201, reply.text
        with ThreadPoolExecutor(6) as pool:
            pairs = [(servers[i % 2], servers[(i + 1) % 2]) for i in range(6)]
            assert sum(pool.map(lambda p: work(*p), pairs)) == SESSIONS
        deadline = time.monotonic() + 60
        while True:
            log = export(servers[0])
            lifecycle = [
                (e["eventType"], e["entityId"])
                for e in log
                if e["eventType"] in ("session.claimed", "session.ended")
            ]
            if len(lifecycle) >= 2 * SESSIONS or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(lifecycle) == len(set(lifecycle)) == 2 * SESSIONS
        assert [e["sequenceNumber"] for e in log] == list(range(1, len(log) + 1))
        verdict = httpx.post(servers[1].url + "/api/audit/verify", headers=ADMIN).json()
        assert verdict["valid"] is True, verdict
        jwks = httpx.get(servers[1].url + "/.well-known/audit-keys/org_default").json()
        assert audit_chain.verify(log, audit_chain.public_keys(jwks)).valid
        for server in servers:
            assert "audit appender pass failed" not in server.log(), server.log()
    finally:
        for server in servers:
            server.stop()
