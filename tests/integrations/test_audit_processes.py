"""Session claims and ends audited by real `shopfloor serve` processes: on PostgreSQL two
processes serve the claims and ends of one organisation while both run the audit appender;
the organisation keeps one chain (sequence 1..n, no gap, each claim and end once), valid by
the server's verify and by the JWKS alone. On both databases, processes SIGKILLed before and
during appends lose and duplicate no entry."""

from __future__ import annotations

import signal
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


def outbox_waiting(server: ServerProcess) -> int:
    """The facts waiting in the audit outbox, from the server's /metrics gauge."""
    text = httpx.get(server.url + "/metrics", headers=ADMIN, timeout=30).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("shopfloor_audit_outbox_waiting{")
    )


def test_sigkill_before_or_during_an_append_loses_and_duplicates_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    """Sessions claimed and ended on a server whose appender never comes round (as if the
    process died after each action's commit); that server SIGKILLed; a second one
    SIGKILLed as soon as its appender has begun moving the outbox (likely within a pass,
    between or inside its batch transactions); a third finishes. Every action has exactly
    one entry, the chain is whole and valid."""
    data = tmp_path / "data"
    idle = server_env(backend, data, SHOPFLOOR_AUDIT_APPEND_INTERVAL_MS="3600000")
    first = start_server(idle, tmp_path / "s1.log")
    try:
        with httpx.Client(headers=ADMIN) as client:
            for n in range(SESSIONS):
                body = {"prompt": "p", "issueIdentifier": f"ENG-{n}"}
                reply = client.post(first.url + "/api/v1/sessions", json=body)
                assert reply.status_code == 201, reply.text
        assert work(first, first) == SESSIONS
        # The creations were chained before the worker's registration entry; the claims
        # and ends wait.
        waiting = outbox_waiting(first)
        assert waiting == 2 * SESSIONS
    finally:
        first.stop(signal.SIGKILL)
    eager = server_env(
        backend,
        data,
        SHOPFLOOR_AUDIT_APPEND_INTERVAL_MS="1",
        SHOPFLOOR_AUDIT_APPEND_MAX_LAG_MS="0",
    )
    second = start_server(eager, tmp_path / "s2.log")
    try:
        deadline = time.monotonic() + 60
        while outbox_waiting(second) == waiting and time.monotonic() < deadline:
            pass
    finally:
        second.stop(signal.SIGKILL)
    third = start_server(eager, tmp_path / "s3.log")
    try:
        deadline = time.monotonic() + 60
        while outbox_waiting(third) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox_waiting(third) == 0
        log = export(third)
        facts = [(e["eventType"], e["entityId"]) for e in log if e["entityType"] == "session"]
        assert len(facts) == len(set(facts)) == 3 * SESSIONS
        kinds = {"session.created", "session.claimed", "session.ended"}
        assert {kind for kind, _ in facts} == kinds
        assert [e["sequenceNumber"] for e in log] == list(range(1, len(log) + 1))
        verdict = httpx.post(third.url + "/api/audit/verify", headers=ADMIN).json()
        assert verdict["valid"] is True, verdict
        jwks = httpx.get(third.url + "/.well-known/audit-keys/org_default").json()
        assert audit_chain.verify(log, audit_chain.public_keys(jwks)).valid
    finally:
        third.stop()
