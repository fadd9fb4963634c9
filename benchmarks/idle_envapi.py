"""Many idle workers on the environment work API: 1,000 workers long-polling one environment
(`GET /v1/environments/{env}/work/poll?block_ms=999`, polling again at once when a poll ends
empty; on work: ack, then a graceful stop, as benchmarks/shopfloor_envapi.py's workers do),
spread over the load processes, each on its own keep-alive connection, while sessions arrive
one at a time at a slow steady rate.

Measured as for the AgentFactory fleet (benchmarks/idle_workers.py, `measure_idle`): server
CPU and peak RSS over the arrival window, the fleet's HTTP requests/s, and enqueue-to-claim
latency (claim = when the poll response carrying the item arrived). A long poll is answered as
soon as work arrives, so unlike the AgentFactory fleet's this latency has no protocol floor;
the price is a fleet that is never quiet: every worker has a poll open at all times and sends
a new one at least every 999 ms (at least 1,000 requests/s from 1,000 idle workers). Each worker
sends its first poll at a random point of the first block window, so the fleet's polls do not
start and end in lockstep."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from itertools import accumulate
from pathlib import Path
from typing import Any

from benchmarks.common import CREW_PROCESSES, Child, Config, run_child, split
from benchmarks.http import HttpConn, HttpError
from benchmarks.idle_workers import measure_idle
from benchmarks.server import shopfloor_server
from benchmarks.shopfloor_envapi import (
    BLOCK_MS,
    create_environment,
    take_one,
    work_body,
    worker_conn,
)

RETRY_AFTER_S = 1.0


async def run(cfg: Config, backend: str, work_dir: Path) -> dict[str, Any]:
    async with shopfloor_server(backend, work_dir) as server:
        env = await create_environment(server.url)
        counts = split(cfg.idle_workers, CREW_PROCESSES)
        args = [
            {"url": server.url, "env": env, "workers": k, "mode": "paced", "first": first}
            for k, first in zip(counts, accumulate(counts, initial=0), strict=False)
        ]
        # Long polls are back to back from the start: a short settle is enough.
        settle_s = min(6.0, cfg.idle_seconds / 2)
        return await measure_idle(
            cfg, server, __name__, args, lambda i: work_body(env, i), work_dir, settle_s
        )


# -- the load process --


async def idle_env_worker(
    child: Child, url: str, env: str, name: str, conns: list[HttpConn]
) -> tuple[int, int]:
    """One long-polling worker whose first poll goes out at a random point of the first block
    window. A failed request (error status, no answer in the client's 60 s, connection
    refused or reset) is counted and logged, and the worker polls again after a pause, as a
    client library would retry; returns (failed requests, requests sent)."""
    conn = worker_conn(url, name)
    conns.append(conn)
    errors = 0
    try:
        await pause(child, random.random() * BLOCK_MS / 1000)
        while not child.stop.is_set():
            try:
                await take_one(child, conn, env)
            except (HttpError, OSError) as exc:
                errors += 1
                print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                await conn.close()
                await pause(child, RETRY_AFTER_S)
        return errors, conn.requests
    finally:
        await conn.close()


async def pause(child: Child, seconds: float) -> None:
    """Sleep, but wake at once when the parent says stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(child.stop.wait(), seconds)


async def tick(child: Child, conns: list[HttpConn]) -> None:
    """Report the requests answered each second as `{"n": count}` (benchmarks/poll_cpu.py
    counts the polls of a window from these)."""
    reported = 0
    while not child.stop.is_set():
        await pause(child, 1.0)
        total = sum(c.requests for c in conns)
        child.emit({"n": total - reported})
        reported = total


async def child_main(child: Child) -> dict[str, Any]:
    a = child.args
    await child.ready()
    names = [f"idle-{a['first'] + n}" for n in range(a["workers"])]
    conns: list[HttpConn] = []
    ticker = asyncio.create_task(tick(child, conns)) if a.get("tick") else None
    outcomes = await asyncio.gather(
        *(idle_env_worker(child, a["url"], a["env"], name, conns) for name in names)
    )
    if ticker is not None:
        ticker.cancel()
    return {
        "count": 0,
        "errors": sum(e for e, _ in outcomes),
        "requests": sum(r for _, r in outcomes),
    }


if __name__ == "__main__":
    run_child(child_main)
