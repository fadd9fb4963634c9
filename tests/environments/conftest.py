"""A real `shopfloor serve` process on a free port, for tests that drive it over HTTP with
real clients (the `anthropic` SDK, the CLI)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, WORKER_KEY, Backend


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path
    env: dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(backend: Backend, tmp_path: Path) -> Iterator[Server]:
    port = _free_port()
    env = {
        **os.environ,
        "SHOPFLOOR_DATABASE_URL": backend.url,
        "SHOPFLOOR_DATA_DIR": str(tmp_path / "data"),
        "SHOPFLOOR_ADMIN_API_KEY": ADMIN_KEY,
        "SHOPFLOOR_WORKER_API_KEY": WORKER_KEY,
        "SHOPFLOOR_HOST": "127.0.0.1",
        "SHOPFLOOR_PORT": str(port),
        "SHOPFLOOR_REAP_INTERVAL_SECONDS": "1",
        "SHOPFLOOR_LOG_LEVEL": "warning",
    }
    if backend.schema:
        env["SHOPFLOOR_DATABASE_SCHEMA"] = backend.schema
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopfloor", "serve"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {(tmp_path / 'server.log').read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not start within 30 s")
            time.sleep(0.1)
        yield Server(url, tmp_path / "data", env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
