"""The per-process upkeep loop: dead workers and expired leases go back to the queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from shopfloor.service.dispatch import Dispatcher

log = logging.getLogger("shopfloor.reaper")

# How often the loop looks for the next deadline (a lease running out, a worker falling
# silent), so that a lease granted since its last look is seen in time: two index lookups.
LOOK_EVERY_MS = 250
# After a deadline, so that the lease has run out by the time the pass looks (`< now`).
PAST_DEADLINE_MS = 5


async def run_reaper(
    dispatcher: Dispatcher,
    interval_seconds: float,
    upkeep: Sequence[Callable[[], Awaitable[None]]] = (),
) -> None:
    """Run `dispatcher.reap()` (then each of `upkeep`) until cancelled: every interval, and
    as soon as a lease runs out or a worker's TTL ends. Every lease lasts seconds and the
    loop looks for the next deadline every LOOK_EVERY_MS, so an expired lease is free again
    a few milliseconds after it runs out, not at the next regular pass. Every replica may
    run one; their passes are fenced against each other."""
    clock = dispatcher.clock
    interval_ms = int(interval_seconds * 1000)
    last_pass = clock.now_ms()
    while True:
        due = await _next_deadline(dispatcher)
        if due is not None and due < last_pass:
            due = None  # the last pass saw it (a lease it could not requeue): wait the interval
        await asyncio.sleep(_wait_ms(clock.now_ms(), last_pass + interval_ms, due) / 1000)
        now = clock.now_ms()
        if now < last_pass + interval_ms and (due is None or now <= due):
            continue
        last_pass = now
        try:
            report = await dispatcher.reap()
            for step in upkeep:
                await step()
        except Exception:  # keep upkeep alive through a transient database error
            log.exception("reaper pass failed")
            continue
        for worker_id in report.dead_workers:
            log.warning("worker %s declared dead", worker_id)
        if report.requeued:
            log.warning(
                "requeued %d session(s): %s", len(report.requeued), ", ".join(report.requeued)
            )


def _wait_ms(now: int, next_pass: int, due: int | None) -> int:
    """Until the next regular pass, just past the next deadline, or the next look, whichever
    comes first."""
    wait = min(next_pass - now, LOOK_EVERY_MS)
    if due is not None:
        wait = min(wait, due + PAST_DEADLINE_MS - now)
    return max(wait, 0)


async def _next_deadline(dispatcher: Dispatcher) -> int | None:
    try:
        return await dispatcher.next_reap_at()
    except Exception:
        log.exception("could not read the next reaper deadline")
        return None
