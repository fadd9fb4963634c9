"""What a `shopfloor worker` is told at start (flags and SHOPFLOOR_WORKER_* variables)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shopfloor.worker.agents import AgentTable

STATUS_CHECK_MAX = 5.0  # seconds: the af-worker checks each session's status every 5 s
LOCK_REFRESH_SECONDS = 60.0  # the af-worker refreshes its issue lock every 60 s


@dataclass(frozen=True)
class WorkerSettings:
    url: str
    agents: AgentTable
    capacity: int = 3
    projects: tuple[str, ...] = ()
    hostname: str = "localhost"
    work_dir: Path = Path(".shopfloor/worker")
    repo: Path | None = None
    time_limit: float = 3600.0  # seconds per session, all its runs together
    stop_grace: float = 10.0  # seconds between SIGTERM and SIGKILL
    drain_timeout: float = 60.0  # seconds running sessions get to finish on SIGTERM
    max_output_bytes: int = 256 * 1024 * 1024
    keep_worktrees: bool = False
    activity_interval: float = 0.5  # seconds between activity flushes
