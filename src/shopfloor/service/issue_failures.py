"""The failure circuit breaker of an issue (the AgentFactory receiver's rule, rensei-platform.md
§5.2): after sessions on an issue fail in a row, new automatic sessions on it wait, 2 minutes
after one failure and twice as long after each further one (at most 30 minutes), and after 5 in
a row they stop until a person steps in. A mention of the agent skips the wait but not the
stop. Failures more than an hour old are forgotten.

The state is read from the issue's own sessions, newest first, rather than kept beside them:
a failed session counts, a completed one ends the run of failures, a stopped one counts for
neither, and a session that a mention queued starts the run afresh (failures before it are
not counted). So nothing on the workers' path writes anything for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shopfloor.store.records import COMPLETED, FAILED, SessionRecord

BASE_DELAY_S = 120
MAX_DELAY_S = 1800
HARD_STOP = 5
FORGET_AFTER_S = 3600
# Enough of an issue's sessions to see HARD_STOP failures between stopped ones.
LOOK_BACK = 4 * HARD_STOP
MENTION = "mention"


@dataclass(frozen=True)
class FailureCheck:
    allowed: bool
    failures: int = 0
    reason: str | None = None  # "backoff" | "hard_stop"
    remaining_s: int = 0
    last_error: str | None = None


def backoff_s(failures: int) -> int:
    if failures <= 0:
        return 0
    return int(min(BASE_DELAY_S * 2 ** (failures - 1), MAX_DELAY_S))


def check(sessions: Sequence[SessionRecord], now_ms: int) -> FailureCheck:
    """Whether a new automatic session may start on the issue whose sessions (newest first)
    are `sessions`."""
    failures, last = 0, None
    for session in sessions:
        if session.status == COMPLETED:
            break
        if session.status == FAILED:
            failures += 1
            last = last or session
        if session.extra.get("initiation") == MENTION:
            break
    if last is None:
        return FailureCheck(True)
    elapsed_s = (now_ms - (last.ended_at or last.updated_at)) / 1000
    if elapsed_s >= FORGET_AFTER_S:
        return FailureCheck(True)
    error = last.error_message
    if failures >= HARD_STOP:
        return FailureCheck(False, failures, "hard_stop", 0, error)
    remaining = backoff_s(failures) - elapsed_s
    if remaining > 0:
        return FailureCheck(False, failures, "backoff", int(-(-remaining // 1)), error)
    return FailureCheck(True, failures)
