"""A real `shopfloor serve` process per test (SQLite file or a fresh PostgreSQL schema), and a
small AgentFactory worker that speaks the wire protocol the way the TS `af-worker` does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, WORKER_KEY, Backend

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    env: dict[str, str]

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
        )

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shopfloor", *args, "--url", self.url],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@contextmanager
def serve(backend: Backend, tmp_path: Path, *extra: str) -> Iterator[Server]:
    port = free_port()
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "SHOPFLOOR_WORKER_API_KEY": WORKER_KEY,
        "SHOPFLOOR_ADMIN_API_KEY": ADMIN_KEY,
        "SHOPFLOOR_DATABASE_URL": backend.url,
        "SHOPFLOOR_DATA_DIR": str(data_dir),
    }
    if backend.schema:
        env["SHOPFLOOR_DATABASE_SCHEMA"] = backend.schema
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopfloor", "serve", "--port", str(port), *extra],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError((tmp_path / "server.log").read_text())
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start: " + (tmp_path / "server.log").read_text())
            time.sleep(0.1)
        yield Server(url, data_dir, env)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def server(backend: Backend, tmp_path: Path) -> Iterator[Server]:
    with serve(backend, tmp_path) as srv:
        yield srv


class Worker:
    """An AgentFactory worker speaking the TS client's requests."""

    def __init__(self, url: str, capacity: int = 3) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {WORKER_KEY}"}, timeout=10
        )
        reply = self.http.post(
            "/api/workers/register",
            json={"hostname": "test-host", "capacity": capacity, "version": "1.0.0"},
        )
        assert reply.status_code == 201, reply.text
        self.id: str = reply.json()["workerId"]

    def poll(self) -> dict[str, Any]:
        reply = self.http.get(f"/api/workers/{self.id}/poll")
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.post(path, json=body if body is not None else {})

    def status(self, session_id: str, status: str, **extra: Any) -> httpx.Response:
        return self.post(
            f"/api/sessions/{session_id}/status", {"workerId": self.id, "status": status, **extra}
        )

    def run(self, session_id: str) -> None:
        assert self.status(session_id, "running").status_code == 200

    def finish(self, session_id: str, status: str = "completed") -> None:
        assert self.status(session_id, "finalizing").status_code == 200
        assert self.status(session_id, status).status_code == 200

    def close(self) -> None:
        self.http.close()


def create_session(admin: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"prompt": "do it", **fields}
    reply = admin.post("/api/v1/sessions", json=body)
    assert reply.status_code == 201, reply.text
    session: dict[str, Any] = reply.json()
    return session


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (no timing assertion: only a cap)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def timeline(admin: httpx.Client, session_id: str, after: int = 0) -> dict[str, Any]:
    reply = admin.get(f"/api/v1/sessions/{session_id}/activity", params={"after": after})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body
