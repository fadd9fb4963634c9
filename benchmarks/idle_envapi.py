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
import math
import random
import sys
from itertools import accumulate
from pathlib import Path
from typing import Any

from benchmarks.ceiling import bare_cpu_per_request
from benchmarks.common import CREW_PROCESSES, Child, Config, raise_fd_limit, run_child, split
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


# Workers per load process at most: one process per core up to this, more beyond (each holds
# a descriptor and a few tasks per worker, and must answer every poll's response in time).
WORKERS_PER_PROCESS = 2_500
# A quiet phase before any work is offered: the server's CPU per empty poll.
QUIET_S = 5.0
# The bare endpoint's CPU per request, measured after the fleet in the same run.
BARE_CONNECTIONS = 8
BARE_SECONDS = 5.0


async def run(cfg: Config, backend: str, work_dir: Path, scale: int = 1) -> dict[str, Any]:
    """The fleet of cfg.idle_workers times `scale` workers."""
    workers = cfg.idle_workers * scale
    limits = raise_fd_limit()
    sources = source_addresses(workers)
    processes = max(CREW_PROCESSES, math.ceil(workers / WORKERS_PER_PROCESS))
    async with shopfloor_server(backend, work_dir) as server:
        env = await create_environment(server.url)
        counts = split(workers, processes)
        args = [
            {
                "url": server.url,
                "env": env,
                "workers": k,
                "mode": "paced",
                "first": first,
                "tick": 1,
                "sources": sources,
            }
            for k, first in zip(counts, accumulate(counts, initial=0), strict=False)
        ]
        # Long polls are back to back from the start: a short settle is enough.
        settle_s = min(6.0, cfg.idle_seconds / 2)
        result = await measure_idle(
            cfg,
            server,
            __name__,
            args,
            lambda i: work_body(env, i),
            work_dir,
            settle_s,
            quiet_s=min(QUIET_S, cfg.idle_seconds),
            workers=workers,
        )
    bare = await bare_cpu_per_request(
        work_dir / "ceiling", BARE_CONNECTIONS, min(BARE_SECONDS, cfg.ceiling_seconds)
    )
    per_poll = result.get("cpu_ms_per_idle_poll")
    return {
        **result,
        "bare_cpu_ms_per_request": bare,
        "idle_poll_cpu_multiple": per_poll / bare if per_poll and bare else None,
        "load_processes": processes,
        "fd_limit_soft": limits[0],
        "fd_limit_hard": limits[1],
        "ephemeral_ports": len(range(*ephemeral_ports())) + 1,
        "source_addresses": max(len(sources), 1),
    }


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux), or the IANA default elsewhere."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


def source_addresses(workers: int) -> list[str]:
    """The loopback addresses the fleet connects from: none named (the kernel picks from
    127.0.0.1's ephemeral ports) while half the range covers the fleet, which leaves room
    for reconnects in TIME_WAIT; else enough of 127.0.0.2, 127.0.0.3, … that each address
    serves at most half the range."""
    low, high = ephemeral_ports()
    per_address = (high - low + 1) // 2
    if workers <= per_address:
        return []
    return [f"127.0.0.{2 + n}" for n in range(math.ceil(workers / per_address))]


# -- the load process --


async def idle_env_worker(
    child: Child, url: str, env: str, name: str, conns: list[HttpConn], source: str | None
) -> tuple[int, int]:
    """One long-polling worker whose first poll goes out at a random point of the first block
    window. A failed request (error status, no answer in the client's 60 s, connection
    refused or reset) is counted and logged, and the worker polls again after a pause, as a
    client library would retry; returns (failed requests, requests sent)."""
    conn = worker_conn(url, name, source)
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
    sources = a.get("sources") or [None]
    outcomes = await asyncio.gather(
        *(
            idle_env_worker(child, a["url"], a["env"], name, conns, sources[n % len(sources)])
            for n, name in enumerate(names)
        )
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
