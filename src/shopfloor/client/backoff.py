"""Retry delays: exponential, capped, with jitter, so a fleet that lost its server does not
come back in lock step (and never spins)."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry): between half
    and all of `base * 2**attempt`, at most `cap`."""
    ceiling = min(cap, base * 2 ** min(attempt, 30))
    return random.uniform(ceiling / 2, ceiling)
