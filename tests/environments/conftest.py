"""A real `shopfloor serve` process on a free port, for tests that drive it over HTTP with
real clients (the `anthropic` SDK, the CLI)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ADMIN_KEY,
    BACKENDS,
    PG_URL,
    WORKER_KEY,
    Backend,
    _drop_schema,
    _require_postgres,
)


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path
    env: dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per test module and backend (starting one takes seconds); tests share it
    and keep apart by creating their own environments."""
    tmp_path = tmp_path_factory.mktemp("server")
    if request.param == "sqlite":
        backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    else:
        _require_postgres()
        backend = Backend("postgres", PG_URL, f"t_{uuid.uuid4().hex[:12]}")
    try:
        yield from _serve(backend, tmp_path)
    finally:
        if backend.schema:
            _drop_schema(backend.schema)


def _serve(backend: Backend, tmp_path: Path) -> Iterator[Server]:
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
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {(tmp_path / 'server.log').read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not start within 120 s")
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
