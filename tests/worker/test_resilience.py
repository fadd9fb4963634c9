"""A worker outlives its server going away and its own silence: a server restart is waited
out with growing, jittered retries (sessions keep running and report once it is back), and
a worker the server declared dead registers again (`404 Worker not found`), gives up the
sessions the server moved on, and goes on serving."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shopfloor.client import OperatorClient
from tests.conftest import ADMIN_KEY, Backend
from tests.processes.server import ServerProcess, free_port, server_env, stop_cleanly
from tests.worker.conftest import (
    FAST,
    Workers,
    agent_runs,
    alive,
    create,
    wait_ended,
    wait_for,
    wait_status,
)


def serve_on(env: dict[str, str], log: Path, port: int) -> ServerProcess:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopfloor", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = ServerProcess(f"http://127.0.0.1:{port}", proc, log)

    def up() -> bool:
        assert proc.poll() is None, server.log()
        try:
            return httpx.get(server.url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 30, "the server")
    return server


@pytest.mark.slow
def test_sessions_carry_on_while_the_server_restarts(tmp_path: Path, repo: Path) -> None:
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    # A worker TTL longer than the restart: the server must not declare the worker dead.
    env = server_env(backend, tmp_path / "data", **FAST, SHOPFLOOR_WORKER_TTL_SECONDS="60")
    port = free_port()
    server = serve_on(env, tmp_path / "server1.log", port)
    pool = Workers(server.url, repo, tmp_path, tmp_path / "runs.jsonl")
    try:
        worker = pool.start(agent="claude")
        worker_id = worker.worker_id()
        with OperatorClient(server.url, ADMIN_KEY) as operator:
            sid = create(operator, "through a restart sleep:6")
            wait_status(operator, sid, "running")
        stop_cleanly(server)
        down_at = time.monotonic()
        wait_for(lambda: "poll: " in worker.log(), 10, "the worker to notice")
        time.sleep(max(0.0, 4 - (time.monotonic() - down_at)))
        server = serve_on(env, tmp_path / "server2.log", port)
        with OperatorClient(server.url, ADMIN_KEY) as operator:
            session = wait_ended(operator, sid)
        assert session["status"] == "completed", worker.log()
        assert session["workerId"] == worker_id  # the same worker, never re-registered
        assert worker.log().count("INFO registered") == 1
        assert len(agent_runs(worker.agent_log, sid)) == 1
        # Retries back off (0.5 s, 1 s, 2 s, … with jitter): no busy loop.
        assert 1 <= worker.log().count("WARNING poll: ") <= 10, worker.log()
        assert worker.stop() == 0
    finally:
        pool.stop_all()
        if server.proc.poll() is None:
            stop_cleanly(server)


@pytest.mark.slow
def test_a_worker_declared_dead_registers_again_and_serves_on(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start(agent="claude", capacity=1)
    first_id = worker.worker_id()
    sid = create(operator, "sleep:8")
    wait_status(operator, sid, "running")
    first = wait_for(lambda: agent_runs(worker.agent_log, sid), what="the agent")[0]
    worker.signal(signal.SIGSTOP)  # silent for longer than the worker TTL (3 s)
    try:
        wait_for(lambda: operator.get_session(sid)["status"] == "pending", 20, "the requeue")
    finally:
        worker.signal(signal.SIGCONT)
    # It learns it is unknown (404 Worker not found), registers again, is refused the
    # session (it was requeued), stops that agent, and runs the session anew.
    session = wait_ended(operator, sid)
    assert session["status"] == "completed", worker.log()
    second_id = worker.worker_id()
    assert second_id != first_id and session["workerId"] == second_id
    assert f"the server does not know {first_id} any more" in worker.log()
    refused = f"session {sid} not transferred to {second_id}: Session owned by different worker"
    assert refused in worker.log()
    assert not alive(first["pid"])
    runs = agent_runs(worker.agent_log, sid)
    assert len({r["pid"] for r in runs}) == 2
    assert runs[-1]["prompts"][0].startswith("This session was interrupted")
    assert worker.stop() == 0
