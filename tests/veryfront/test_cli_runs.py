"""`shopfloor runs create` against a real server process: the admitted run reaches a worker
of its implementation kind and worker key with the message as its request snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, Backend
from tests.veryfront.server import Server, serve

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    with serve(backend, tmp_path) as srv:
        yield srv


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopfloor", *args, "--url", server.url, "--admin-key", ADMIN_KEY],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "250"},  # keep rich from wrapping messages
    )


def register_and_claim(server: Server, worker_key: str) -> dict[str, Any] | None:
    with httpx.Client(base_url=server.url, headers=ADMIN) as http:
        reply = http.post(
            "/agent-workers/projects/demo/workers",
            json={"implementation_kind": "cli-kind", "worker_key": worker_key},
        )
        worker_id = reply.json()["worker"]["id"]
        claimed = http.post(
            f"/agent-workers/workers/{worker_id}/claim", json={"lease_duration_seconds": 30}
        )
        run: dict[str, Any] | None = claimed.json()["run"]
        return run


def test_runs_create_admits_a_run_for_the_worker_key(server: Server, tmp_path: Path) -> None:
    args = ["runs", "create", "--project", "demo", "--implementation-kind", "cli-kind"]
    done = cli(
        server,
        *args,
        "--worker-key",
        "w-1",
        "--message",
        "Summarise the logs",
        "--idempotency-key",
        "cli-1",
        "--json",
    )
    assert done.returncode == 0, done.stderr + done.stdout
    reply = json.loads(done.stdout)
    assert (reply["status"], reply["duplicate"]) == ("pending", False)
    again = cli(server, *args, "--worker-key", "w-1", "--idempotency-key", "cli-1", "--json")
    assert json.loads(again.stdout)["run_id"] == reply["run_id"]
    assert json.loads(again.stdout)["duplicate"] is True

    assert register_and_claim(server, "w-2") is None  # another worker key
    run = register_and_claim(server, "w-1")
    assert run is not None and run["run_id"] == reply["run_id"]
    text = run["request_snapshot"]["messages"][0]["parts"][0]["text"]
    assert text == "Summarise the logs"


def test_runs_create_from_a_snapshot_file_for_any_worker(server: Server, tmp_path: Path) -> None:
    snapshot = {
        "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]}],
        "tools": [{"name": "search"}],
        "context": [],
        "forwardedProps": {"temperature": 0},
    }
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(snapshot))
    done = cli(
        server,
        "runs",
        "create",
        "--project",
        "demo",
        "--implementation-kind",
        "cli-kind",
        "--snapshot-file",
        str(path),
        "--run-id",
        "run_from-cli",
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "admitted run_from-cli (pending)" in done.stdout
    run = register_and_claim(server, "anyone")
    assert run is not None and run["run_id"] == "run_from-cli"
    assert run["request_snapshot"] == snapshot
    shown = cli(server, "runs", "show", "run_from-cli")
    assert json.loads(shown.stdout)["status"] == "running"


def test_runs_create_reports_the_servers_validation_error(server: Server) -> None:
    done = cli(
        server,
        "runs",
        "create",
        "--project",
        "demo",
        "--implementation-kind",
        "bad kind",
        "--worker-key",
        "w",
    )
    assert done.returncode == 1
    assert "config.agent_admission.implementation_kind must be" in done.stdout
