"""The issue failure circuit breaker read from an issue's sessions (service/issue_failures.py)."""

from __future__ import annotations

from typing import Any

from shopfloor.service.issue_failures import backoff_s, check
from shopfloor.store.records import SessionRecord

NOW = 10_000_000


def ended(status: str, seconds_ago: float, **extra: Any) -> SessionRecord:
    at = NOW - int(seconds_ago * 1000)
    return SessionRecord(
        id=f"s-{status}-{seconds_ago}",
        queue="q",
        status=status,
        priority=3,
        queued_at=at,
        created_at=at,
        updated_at=at,
        ended_at=at,
        extra=extra,
    )


def test_the_wait_doubles_per_failure_up_to_30_minutes() -> None:
    assert [backoff_s(n) for n in range(7)] == [0, 120, 240, 480, 960, 1800, 1800]


def test_a_completed_session_ends_the_run_and_a_stopped_one_counts_for_neither() -> None:
    newest_first = [ended("failed", 10), ended("stopped", 20), ended("failed", 30)]
    found = check(newest_first, NOW)
    assert (found.allowed, found.reason, found.failures) == (False, "backoff", 2)
    assert found.remaining_s == 240 - 10
    found = check([ended("failed", 10), ended("completed", 20), ended("failed", 30)], NOW)
    assert (found.failures, found.remaining_s) == (1, 110)


def test_a_mentioned_session_starts_the_count_afresh() -> None:
    runs = [ended("failed", 5 + n) for n in range(4)]
    runs.insert(1, ended("failed", 5.5, initiation="mention"))
    assert check(runs, NOW).failures == 2


def test_five_in_a_row_stop_until_an_hour_has_passed() -> None:
    five = [ended("failed", 100 + n) for n in range(5)]
    assert check(five, NOW).reason == "hard_stop"
    later = [ended("failed", 3600 + n) for n in range(5)]
    assert check(later, NOW).allowed
    assert check([], NOW).allowed
