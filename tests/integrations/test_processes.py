"""Webhooks against real `shopfloor serve` processes: a server killed (SIGKILL) right after
answering 200 loses no delivery, and processes it once after a restart; the same delivery
sent at once to three processes on PostgreSQL is stored and acted on once."""

from __future__ import annotations

import json
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopfloor.service.webhook_signatures import sign
from tests.agentfactory.helpers import ADMIN
from tests.conftest import Backend
from tests.integrations.helpers import LINEAR_SECRET, linear_body
from tests.processes.server import ServerProcess, server_env, start_server

pytestmark = pytest.mark.slow


def env(backend: Backend, data_dir: Path) -> dict[str, str]:
    return server_env(
        backend,
        data_dir,
        SHOPFLOOR_WEBHOOK_SECRET_LINEAR=LINEAR_SECRET,
        SHOPFLOOR_REAP_INTERVAL_SECONDS="0.2",
        SHOPFLOOR_TURN_LEASE_SECONDS="2",
    )


def deliver(server: ServerProcess, body: dict[str, Any], delivery: str) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {**sign("linear", LINEAR_SECRET, raw), "linear-delivery": delivery}
    return httpx.post(server.url + "/api/webhooks/ingest/linear", content=raw, headers=headers)


def wait_for_sessions(server: ServerProcess, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found: list[dict[str, Any]] = httpx.get(
            server.url + "/api/v1/sessions", headers=ADMIN
        ).json()["sessions"]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {count} sessions within 30 s:\n{server.log()}")


def audit_types(server: ServerProcess) -> list[str]:
    events = httpx.get(server.url + "/api/audit", headers=ADMIN).json()["events"]
    return [e["eventType"] for e in events]


def test_a_delivery_survives_a_crash_after_its_200(backend: Backend, tmp_path: Path) -> None:
    environment = env(backend, tmp_path / "data")
    server = start_server(environment, tmp_path / "first.log")
    body = linear_body("created", "lin-crash", int(time.time() * 1000))
    try:
        reply = deliver(server, body, "crash-1")
        assert reply.status_code == 200, reply.text
    finally:
        server.stop(signal.SIGKILL)
    again = start_server(environment, tmp_path / "second.log")
    try:
        [session] = wait_for_sessions(again, 1)
        assert session["sessionId"] == "lin-crash"
        redelivered = deliver(again, body, "crash-1")
        assert redelivered.json()["duplicate"] is True
        assert redelivered.json()["eventId"] == reply.json()["eventId"]
        time.sleep(1)  # room for a second processing, if there were one
        assert audit_types(again).count("session.created") == 1
        assert audit_types(again).count("webhook.processed") == 1
        verdict = httpx.post(again.url + "/api/audit/verify", headers=ADMIN).json()
        assert verdict["valid"] is True
    finally:
        again.stop()


def test_one_delivery_sent_to_three_processes_acts_once(postgres: Backend, tmp_path: Path) -> None:
    environment = env(postgres, tmp_path / "data")
    servers = [start_server(environment, tmp_path / f"s{i}.log") for i in range(3)]
    try:
        body = linear_body("created", "lin-three", int(time.time() * 1000))
        delivery = str(uuid.uuid4())
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(lambda s: deliver(s, body, delivery), servers * 2))
        assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
        assert len({r.json()["eventId"] for r in replies}) == 1
        assert sum(1 for r in replies if not r.json().get("duplicate")) == 1
        [session] = wait_for_sessions(servers[0], 1)
        assert session["sessionId"] == "lin-three"
        time.sleep(1)
        types = audit_types(servers[1])
        assert types.count("webhook.ingest") == 1 and types.count("session.created") == 1
        verdict = httpx.post(servers[2].url + "/api/audit/verify", headers=ADMIN).json()
        assert verdict["valid"] is True
    finally:
        for server in servers:
            server.stop()
