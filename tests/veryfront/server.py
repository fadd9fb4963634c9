"""A real `shopfloor serve` process on a free port, for tests where HTTP and processes matter."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import ADMIN_KEY, WORKER_KEY, Backend


@dataclass(frozen=True)
class Server:
    url: str
    admin_key: str
    data_dir: Path
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(backend: Backend, tmp_path: Path, **settings: str) -> Iterator[Server]:
    """Start the server (migrating the backend), wait until /healthz answers, stop it after."""
    port = free_port()
    data_dir = tmp_path / "server-data"
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "SHOPFLOOR_DATABASE_URL": backend.url,
        "SHOPFLOOR_DATA_DIR": str(data_dir),
        "SHOPFLOOR_ADMIN_API_KEY": ADMIN_KEY,
        "SHOPFLOOR_WORKER_API_KEY": WORKER_KEY,
        "SHOPFLOOR_LOG_LEVEL": "warning",
        **settings,
    }
    if backend.schema:
        env["SHOPFLOOR_DATABASE_SCHEMA"] = backend.schema
    command = [sys.executable, "-m", "shopfloor", "serve", "--host", "127.0.0.1"]
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, url, log)
        yield Server(url, ADMIN_KEY, data_dir, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"shopfloor serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"shopfloor serve did not become healthy:\n{log.read_text()}")
