"""Real `shopfloor serve` processes on free ports, for tests where processes matter."""

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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_env(backend: Backend, data_dir: Path, **settings: object) -> dict[str, str]:
    """The environment of a server process: our keys, this backend, and `settings` given as
    SHOPFLOOR_<NAME>=value (e.g. claim_ttl_seconds=5)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPFLOOR_")}
    env.update(
        SHOPFLOOR_DATABASE_URL=backend.url,
        SHOPFLOOR_DATA_DIR=str(data_dir),
        SHOPFLOOR_WORKER_API_KEY=WORKER_KEY,
        SHOPFLOOR_ADMIN_API_KEY=ADMIN_KEY,
        SHOPFLOOR_LOG_LEVEL="warning",
    )
    if backend.schema:
        env["SHOPFLOOR_DATABASE_SCHEMA"] = backend.schema
    env.update({f"SHOPFLOOR_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, requests in flight are cut off."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_server(env: dict[str, str], log: Path, *args: str) -> Server:
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "shopfloor", "serve", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    wait_healthy(server)
    return server


def wait_healthy(server: Server, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited ({server.process.returncode}):\n{server.output()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not become healthy:\n{server.output()}")


def spawned_children(pid: int) -> list[int]:
    """Processes started by `pid` with multiprocessing's spawn (uvicorn's worker processes)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmdline:
            children.append(int(entry.name))
    return children
