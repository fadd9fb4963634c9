"""Aggregates of the public API (rensei-platform.md §2.8): cycle time, cost and attempts per
phase (work type) of the sessions that ended in a time range, from the session rows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from shopfloor.store.records import SessionRecord

TIME_RANGES = {"7d": 7, "30d": 30, "90d": 90}
DEFAULT_RANGE = "30d"
MAX_SESSIONS = 50_000  # the newest this many of the range are aggregated


@dataclass(frozen=True)
class Phase:
    avg_cycle_time_ms: float
    avg_cost_usd: float
    avg_attempts: float
    total_records: int


@dataclass(frozen=True)
class PhaseMetrics:
    phases: dict[str, Phase]
    rework_rate: float
    escalations: dict[str, int]  # extra attempts on an issue (0, 1, 2, 3+) -> issues
    issue_count: int


def phase_metrics(sessions: list[SessionRecord]) -> PhaseMetrics:
    by_phase: dict[str, list[SessionRecord]] = defaultdict(list)
    attempts: dict[tuple[str, str], int] = defaultdict(int)  # (issue, phase) -> sessions
    for s in sessions:
        phase = s.work_type or "unknown"
        by_phase[phase].append(s)
        attempts[(s.issue_id or s.id, phase)] += 1
    phases = {}
    for phase, group in sorted(by_phase.items()):
        issues = {s.issue_id or s.id for s in group}
        cycle = [(s.ended_at or s.updated_at) - s.created_at for s in group]
        phases[phase] = Phase(
            avg_cycle_time_ms=sum(cycle) / len(group),
            avg_cost_usd=sum(s.total_cost_usd or 0.0 for s in group) / len(group),
            avg_attempts=len(group) / len(issues),
            total_records=len(group),
        )
    per_issue: dict[str, int] = defaultdict(int)
    for (issue, _), count in attempts.items():
        per_issue[issue] = max(per_issue[issue], count)
    escalations: dict[str, int] = defaultdict(int)
    for count in per_issue.values():
        escalations[str(count - 1) if count < 4 else "3+"] += 1
    reworked = sum(1 for count in per_issue.values() if count > 1)
    return PhaseMetrics(
        phases=phases,
        rework_rate=reworked / len(per_issue) if per_issue else 0.0,
        escalations=dict(sorted(escalations.items())),
        issue_count=len(per_issue),
    )
