"""Aggregate counts the store reads for metrics and the console (no rows, only totals)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SessionCount:
    """Sessions of one organisation, queue, project and status."""

    org_id: str
    queue: str
    project: str | None
    status: str
    count: int
    oldest_queued_at: int | None  # epoch ms: the longest-waiting one's queued_at


@dataclass(frozen=True)
class WorkerCount:
    """Workers of one organisation, protocol and status, with their summed load."""

    org_id: str
    protocol: str
    status: str
    count: int
    capacity: int  # summed capacity
    active: int  # summed active count, as their heartbeats report it


@dataclass(frozen=True)
class StatsScope:
    """Whose totals: one organisation (None: every one), and within it some projects
    (None: all of them)."""

    org_id: str | None = None
    projects: frozenset[str] | None = None


@dataclass(frozen=True)
class QueueMinute:
    """Sessions of one organisation, queue and project handed to workers in one minute."""

    minute: int  # epoch ms // 60,000
    org_id: str
    queue: str
    project: str  # "" for none
    claims: int
    wait_ms_sum: int  # summed time from queued to handed out
    wait_ms_max: int


@dataclass(frozen=True)
class WorkerPage:
    """One page of workers, in id order: those after `after_id`, of one organisation (None:
    every one), with this status and protocol (None: any)."""

    org_id: str | None = None
    status: str | None = None
    protocol: str | None = None
    after_id: str | None = None
    limit: int = 50
