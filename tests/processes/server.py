"""Start and stop real `shopfloor serve` processes for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import ADMIN_KEY, WORKER_KEY, Backend


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def server_env(backend: Backend, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPFLOOR_")}
    env.update(
        {
            "SHOPFLOOR_DATABASE_URL": backend.url,
            "SHOPFLOOR_DATA_DIR": str(data_dir),
            "SHOPFLOOR_WORKER_API_KEY": WORKER_KEY,
            "SHOPFLOOR_ADMIN_API_KEY": ADMIN_KEY,
            "SHOPFLOOR_LOG_LEVEL": "warning",
        }
    )
    if backend.schema:
        env["SHOPFLOOR_DATABASE_SCHEMA"] = backend.schema
    env.update(extra)
    return env


def start_server(
    env: dict[str, str], log_path: Path, *args: str, up_within: float = 120
) -> ServerProcess:
    port = free_port()
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopfloor", "serve", "--port", str(port), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = ServerProcess(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + up_within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server did not come up:\n{server.log()}")


def stop_cleanly(server: ServerProcess) -> None:
    """SIGTERM must shut the server down cleanly: in-flight work drained, the store closed.
    (uvicorn re-raises the signal after its graceful shutdown, so the exit status is -15.)"""
    code = server.stop(signal.SIGTERM)
    assert code in (0, -signal.SIGTERM), server.log()
    assert "shopfloor: stopped cleanly" in server.log(), server.log()
    assert "Traceback" not in server.log(), server.log()
