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
