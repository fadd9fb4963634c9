"""The end-to-end rig: a real `shopfloor serve` (one process on SQLite, or several on
PostgreSQL) whose agent loop calls the stand-in Messages API, the unmodified `anthropic`
EnvironmentWorker as a subprocess of a chosen SDK version, and the SDK's user-side client."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import ADMIN_KEY, Backend
from tests.managed.conftest import MODEL_KEY
from tests.managed.fake_model import FakeModel
from tests.processes.server import ServerProcess, free_port, server_env

REPO = Path(__file__).resolve().parents[2]
WORKER_SCRIPT = Path(__file__).with_name("sdk_worker.py")
LATEST_PYTHON = REPO / ".venv-sdk-latest" / "bin" / "python"
# The pinned SDK is the suite's own (the `test` extra); the newest is installed by
# scripts/test.sh into .venv-sdk-latest.
SDKS = [pytest.param("pinned", id="sdk-pinned"), pytest.param("latest", id="sdk-latest")]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def sdk_python(which: str) -> str:
    if which == "pinned":
        return sys.executable
    if LATEST_PYTHON.exists():
        return str(LATEST_PYTHON)
    if os.environ.get("CI"):
        pytest.fail(f"{LATEST_PYTHON} is missing: scripts/test.sh installs the newest anthropic")
    pytest.skip("no .venv-sdk-latest (scripts/test.sh sets it up)")


@dataclass
class Rig:
    backend: Backend
    fake: FakeModel
    data_dir: Path
    log_dir: Path
    port: int
    processes: int = 1
    extra: dict[str, str] = field(default_factory=dict)
    server: ServerProcess | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return server_env(
            self.backend,
            self.data_dir,
            SHOPFLOOR_MODEL_BASE_URL=self.fake.url,
            SHOPFLOOR_MODEL_API_KEY=MODEL_KEY,
            SHOPFLOOR_REAP_INTERVAL_SECONDS="1",
            SHOPFLOOR_TURN_LEASE_SECONDS="3",
            SHOPFLOOR_WORK_LEASE_TTL_SECONDS="10",
            **self.extra,
        )

    def start(self) -> None:
        """Start the server on the rig's port (the same one after a restart, so that
        workers and clients keep their URL)."""
        log_path = self.log_dir / f"server-{self.restarts}.log"
        log = log_path.open("wb")
        args = [sys.executable, "-m", "shopfloor", "serve", "--port", str(self.port)]
        if self.processes > 1:
            args += ["--processes", str(self.processes)]
        # A group of its own, so that a kill takes every server process (with --processes
        # the children of uvicorn's supervisor outlive a SIGKILL of the supervisor alone).
        proc = subprocess.Popen(
            args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.server = ServerProcess(self.url, proc, log_path)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.server.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not come up:\n{self.server.log()}")

    def kill(self) -> None:
        """SIGKILL every server process: no shutdown, nothing released."""
        assert self.server is not None
        os.killpg(self.server.proc.pid, signal.SIGKILL)
        self.server.proc.wait()
        self.restarts += 1

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(signal.SIGTERM, timeout=30)
            # Whatever of the group outlived its supervisor (it should not) goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.server.proc.pid, signal.SIGKILL)

    # -- clients --

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=ADMIN, timeout=30)

    def environment(self, name: str) -> tuple[str, str]:
        """A new environment and an rsp_live_ key limited to it (the worker's and the
        user's credential)."""
        with self.admin() as c:
            env_id = c.post(
                "/v1/environments", json={"name": name, "config": {"type": "self_hosted"}}
            ).json()["id"]
            token = c.post("/api/v1/registration-tokens", json={"project": env_id}).json()
        return env_id, token["token"]

    def user(self, key: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=key, max_retries=2, timeout=30)

    def work_state(self, env_id: str, session_id: str) -> str:
        work_id = "work_" + session_id.removeprefix("sess_")
        with self.admin() as c:
            state: str = c.get(f"/v1/environments/{env_id}/work/{work_id}").json()["state"]
        return state


@contextmanager
def rig(backend: Backend, fake: FakeModel, tmp: Path, processes: int = 1) -> Iterator[Rig]:
    r = Rig(backend, fake, tmp / "data", tmp, free_port(), processes)
    r.start()
    try:
        yield r
    finally:
        r.stop()


@contextmanager
def sdk_worker(
    rig: Rig, which: str, env_id: str, key: str, workdir: Path, max_idle: float = 1.0
) -> Iterator[subprocess.Popen[bytes]]:
    """The SDK's EnvironmentWorker polling the environment, as a subprocess."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = rig.log_dir / f"worker-{which}-{time.monotonic_ns()}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sdk_python(which), str(WORKER_SCRIPT), rig.url, env_id, key, str(workdir), str(max_idle)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc.log_path = log_path  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def worker_log(proc: subprocess.Popen[bytes]) -> str:
    path: Path = proc.log_path  # type: ignore[attr-defined]
    return path.read_text(errors="replace")


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.TransportError, anthropic.APIConnectionError):
            last = None
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def event_types(user: anthropic.Anthropic, session_id: str) -> list[str]:
    return [e.type for e in user.beta.sessions.events.list(session_id, limit=1000)]


def idles(user: anthropic.Anthropic, session_id: str, reason: str = "end_turn") -> int:
    return sum(
        1
        for e in user.beta.sessions.events.list(session_id, limit=1000)
        if e.type == "session.status_idle" and e.stop_reason.type == reason
    )


def find(root: Path, name: str) -> Path | None:
    found = sorted(root.rglob(name))
    return found[0] if found else None
