"""Real `shopfloor serve` processes and real `shopfloor worker` processes, the workers running
the fake agent CLIs of this folder (fake_agent.py; `bin/claude` and `bin/codex` put it on
PATH under the real names). Server intervals are short so that the tests are quick: the
worker takes them from its registration reply."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shopfloor.client import OperatorClient
from tests.conftest import ADMIN_KEY, WORKER_KEY, Backend
from tests.processes.server import ServerProcess, server_env, start_server, stop_cleanly

HERE = Path(__file__).resolve().parent
BIN = HERE / "bin"
FAKE = HERE / "fake_agent.py"
PLAIN = f"{sys.executable} {FAKE} plain"  # a plain command; the prompt goes to stdin

FAST = {
    "SHOPFLOOR_POLL_INTERVAL_MS": "200",
    "SHOPFLOOR_HEARTBEAT_INTERVAL_MS": "1000",  # the worker TTL is 3 s
}


def start(backend: Backend, tmp_path: Path, name: str = "server", **extra: str) -> ServerProcess:
    env = server_env(backend, tmp_path / "data", **{**FAST, **extra})
    return start_server(env, tmp_path / f"{name}.log")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server on a SQLite file (the worker is a client: the database does not matter to
    it; the race test also runs on PostgreSQL)."""
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    proc = start(backend, tmp_path)
    yield proc
    stop_cleanly(proc)


@pytest.fixture
def operator(server: ServerProcess) -> Iterator[OperatorClient]:
    with OperatorClient(server.url, ADMIN_KEY) as client:
        yield client


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The git repository the workers' sessions work on."""
    path = tmp_path / "repo"
    path.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=path, check=True)
    (path / "README.md").write_text("a repository for the worker tests\n")
    subprocess.run([*git, "add", "."], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], cwd=path, check=True)
    return path


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    agent_log: Path
    work_dir: Path
    args: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker did not exit in {timeout}s:\n{self.log()}") from None

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def worker_id(self, timeout: float = 30) -> str:
        """The id it registered under (the last one, if it registered again)."""
        found = wait_for(lambda: _registered_ids(self.log()), timeout, "worker registration")
        return str(found[-1])


def _registered_ids(log: str) -> list[str]:
    return [
        line.split("registered ", 1)[1].split()[0]
        for line in log.splitlines()
        if "INFO registered " in line
    ]


@dataclass
class Workers:
    """Starts `shopfloor worker` processes; stops whatever is left at the end of a test."""

    url: str
    repo: Path
    tmp_path: Path
    agent_log: Path
    started: list[WorkerProcess] = field(default_factory=list)

    def start(
        self,
        *args: str,
        agent: str = "claude",
        key: str | None = WORKER_KEY,
        env: dict[str, str] | None = None,
        capacity: int = 2,
    ) -> WorkerProcess:
        index = len(self.started)
        work_dir = self.tmp_path / f"worker{index}"
        log_path = self.tmp_path / f"worker{index}.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SHOPFLOOR_")}
        environ.update(
            {
                "PATH": f"{BIN}{os.pathsep}{environ.get('PATH', '')}",
                "FAKE_AGENT_LOG": str(self.agent_log),
                "FAKE_AGENT_PYTHON": sys.executable,
            }
        )
        if key is not None:
            environ["SHOPFLOOR_WORKER_KEY"] = key
        environ.update(env or {})
        argv = [
            sys.executable,
            "-m",
            "shopfloor",
            "worker",
            "--url",
            self.url,
            "--agent",
            agent,
            "--repo",
            str(self.repo),
            "--work-dir",
            str(work_dir),
            "--capacity",
            str(capacity),
            "--stop-grace",
            "1",
            "--hostname",
            f"test-worker-{index}",
            *args,
        ]
        proc = subprocess.Popen(
            argv,
            env=environ,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=self.tmp_path,
        )
        worker = WorkerProcess(proc, log_path, self.agent_log, work_dir, argv)
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGKILL)
                worker.proc.wait()


@pytest.fixture
def workers(server: ServerProcess, repo: Path, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(server.url, repo, tmp_path, tmp_path / "agent-runs.jsonl")
    yield pool
    pool.stop_all()


def agent_runs(path: Path, session_id: str | None = None) -> list[dict[str, Any]]:
    """The runs the fake agents logged (one line per prompt they took)."""
    if not path.exists():
        return []
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in runs if session_id is None or r["session"] == session_id]


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


TERMINAL = ("completed", "failed", "stopped")


def wait_ended(operator: OperatorClient, session_id: str, timeout: float = 60) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        session = operator.get_session(session_id)
        return session if session["status"] in TERMINAL else None

    result: dict[str, Any] = wait_for(ended, timeout, f"session {session_id} to end")
    return result


def wait_status(
    operator: OperatorClient, session_id: str, status: str, timeout: float = 60
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        session = operator.get_session(session_id)
        return session if session["status"] == status else None

    result: dict[str, Any] = wait_for(reached, timeout, f"session {session_id} {status}")
    return result


def timeline(operator: OperatorClient, session_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page = operator.session_activity(session_id, after=cursor)
        entries.extend(page["activities"])
        if not page["activities"]:
            return entries
        cursor = page["nextCursor"]


def activities(operator: OperatorClient, session_id: str) -> list[dict[str, Any]]:
    """The session's activity entries' data: {type, content, toolName?, toolInput?}."""
    return [e["data"] for e in timeline(operator, session_id) if e["type"] == "activity"]


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def create(operator: OperatorClient, prompt: str, **fields: Any) -> str:
    session_id: str = operator.create_session({"prompt": prompt, **fields})["sessionId"]
    return session_id


__all__ = ["ADMIN_KEY", "WORKER_KEY"]
