"""The worker's credentials: registration tokens (a runtime JWT for every call, refreshed
when it expires), project-scoped tokens, revocation, and the zero-config start of the
README's quick start (`scripts/serve.sh`, then `shopfloor worker --agent …` and nothing
else: the worker mints itself a registration token with the admin key the server wrote)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shopfloor.client import OperatorClient, WorkerProtocolClient
from tests.conftest import ADMIN_KEY, Backend
from tests.processes.server import ServerProcess, free_port, stop_cleanly
from tests.worker.conftest import (
    BIN,
    Workers,
    agent_runs,
    alive,
    create,
    start,
    wait_ended,
    wait_for,
    wait_status,
)

ROOT = Path(__file__).resolve().parents[2]


def _sqlite(tmp_path: Path) -> Backend:
    return Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)


@pytest.mark.slow
def test_a_registration_token_worker_runs_on_its_runtime_jwt_through_expiries(
    tmp_path: Path, repo: Path
) -> None:
    server = start(_sqlite(tmp_path), tmp_path, SHOPFLOOR_RUNTIME_TOKEN_TTL_SECONDS="2")
    pool = Workers(server.url, repo, tmp_path, tmp_path / "runs.jsonl")
    try:
        with OperatorClient(server.url, ADMIN_KEY) as operator:
            token = operator.create_token(None, None, "test")["token"]
            worker = pool.start(agent="claude", key=token)
            sid = create(operator, "a long one sleep:5")
            session = wait_ended(operator, sid)
            assert session["status"] == "completed", worker.log()
            assert ", runtime token)" in worker.log()
            assert worker.log().count("runtime token refreshed") >= 2
            assert session["workerId"] == worker.worker_id()
            assert worker.stop() == 0
    finally:
        pool.stop_all()
        stop_cleanly(server)


def test_the_client_refreshes_an_expired_runtime_token_and_retries(tmp_path: Path) -> None:
    server = start(_sqlite(tmp_path), tmp_path, SHOPFLOOR_RUNTIME_TOKEN_TTL_SECONDS="1")
    try:
        with OperatorClient(server.url, ADMIN_KEY) as operator:
            token = operator.create_token(None, None, "test")["token"]

        async def scenario() -> tuple[str | None, str | None]:
            client = WorkerProtocolClient(server.url, token)
            try:
                await client.register("host", 1)
                first = client.runtime_token
                await asyncio.sleep(2.2)  # expired (the server allows no leeway)
                await client.heartbeat(0, {"cpu": 0.0, "memory": 0.0})
                return first, client.runtime_token
            finally:
                await client.aclose()

        first, second = asyncio.run(scenario())
        assert first and second and first != second
    finally:
        stop_cleanly(server)


def test_a_project_token_worker_takes_only_its_projects_sessions(
    workers: Workers, operator: OperatorClient
) -> None:
    token = operator.create_token("web", None, "web workers")["token"]
    worker = workers.start(agent="claude", key=token)
    other = create(operator, "for the api project", projectName="api")
    mine = create(operator, "for the web project", projectName="web")
    assert wait_ended(operator, mine)["status"] == "completed", worker.log()
    time.sleep(1)  # several polls later
    assert operator.get_session(other)["status"] == "pending"
    assert agent_runs(worker.agent_log, other) == []
    assert worker.stop() == 0


def test_a_revoked_token_stops_the_worker(workers: Workers, operator: OperatorClient) -> None:
    made = operator.create_token(None, None, "soon revoked")
    worker = workers.start(agent="claude", key=made["token"])
    sid = create(operator, "hang")
    wait_status(operator, sid, "running")
    run = wait_for(lambda: agent_runs(worker.agent_log, sid), what="the agent to start")[0]
    operator.revoke_token(made["id"])
    assert worker.wait(30) == 1
    assert "credential refused: Runtime token revoked" in worker.log()
    assert operator.get_session(sid)["status"] == "pending"  # requeued by the revocation

    assert not alive(run["pid"])


def test_a_bad_key_is_refused_at_registration(workers: Workers) -> None:
    worker = workers.start(agent="claude", key="not-the-key")
    assert worker.wait(30) == 1
    assert "registration refused: 401: Invalid or missing API key" in worker.log()


@pytest.mark.slow
def test_the_quick_start_runs_a_session_with_two_commands(tmp_path: Path) -> None:
    """README, Quick start: `scripts/serve.sh` (no settings at all) and `shopfloor worker
    --agent claude` in the same folder; then queue a session and watch it complete."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPFLOOR_")}
    # serve.sh runs from the checkout; its data dir is put here instead of the checkout's.
    env["SHOPFLOOR_DATA_DIR"] = str(tmp_path / ".shopfloor")
    env["SHOPFLOOR_LOG_LEVEL"] = "warning"
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [str(ROOT / "scripts" / "serve.sh"), "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(url, serve, tmp_path / "serve.log")
    worker_env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPFLOOR_")}
    worker_env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{worker_env.get('PATH', '')}",
            "FAKE_AGENT_LOG": str(tmp_path / "runs.jsonl"),
            "FAKE_AGENT_PYTHON": sys.executable,
            "SHOPFLOOR_URL": url,
        }
    )
    worker_log = tmp_path / "worker.log"
    worker = None
    try:
        wait_for(lambda: (tmp_path / ".shopfloor" / "admin-key").exists(), 60, "the server")
        wait_for(lambda: "shopfloor on" in server.log(), 60, "the server to listen")
        # The second command, run where the first one was: nothing else is set.
        worker = subprocess.Popen(
            [sys.executable, "-m", "shopfloor", "worker", "--agent", "claude"],
            env=worker_env,
            cwd=tmp_path,
            stdout=worker_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        created = subprocess.run(
            [sys.executable, "-m", "shopfloor", "sessions", "create", "--prompt", "hello"],
            env=worker_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        sid = created.stdout.split()[1]
        admin_key = (tmp_path / ".shopfloor" / "admin-key").read_text().strip()
        with OperatorClient(url, admin_key) as operator:
            session = wait_ended(operator, sid)
            assert session["status"] == "completed", worker_log.read_text()
            tokens = operator.list_tokens()
        # It registered with a registration token it minted and kept (mode 0600).
        kept = tmp_path / ".shopfloor" / "worker" / "registration-token"
        assert oct(kept.stat().st_mode & 0o777) == "0o600"
        assert [t["kind"] for t in tokens] == ["rsk"]
        assert ", runtime token)" in worker_log.read_text()
        # Outside a git repository, sessions get worktrees of a scratch repository.
        run = agent_runs(tmp_path / "runs.jsonl", sid)[0]
        assert Path(run["cwd"]).parent == tmp_path / ".shopfloor" / "worker" / "worktrees"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        stop_cleanly(server)
