"""The per-process upkeep loop: dead workers and expired leases go back to the queue."""

from __future__ import annotations

import asyncio
import logging

from shopfloor.service.dispatch import Dispatcher

log = logging.getLogger("shopfloor.reaper")


async def run_reaper(dispatcher: Dispatcher, interval_seconds: float) -> None:
    """Run `dispatcher.reap()` every interval until cancelled. Every replica may run one."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            report = await dispatcher.reap()
        except Exception:  # keep upkeep alive through a transient database error
            log.exception("reaper pass failed")
            continue
        for worker_id in report.dead_workers:
            log.warning("worker %s declared dead", worker_id)
        if report.requeued:
            log.warning(
                "requeued %d session(s): %s", len(report.requeued), ", ".join(report.requeued)
            )
