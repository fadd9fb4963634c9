"""Many idle workers: a large fleet connected to the server while sessions arrive one at a
time at a slow steady rate. `measure_idle` is the measurement every idle fleet shares; this
module's own fleet is 1,000 AgentFactory workers behaving exactly like the af-worker client
(poll, then sleep the server's pollInterval + 0-40 %; heartbeat every heartbeatInterval),
spread over the load processes; the server holds each empty poll up to its poll hold (1 s by
default) for work to arrive. benchmarks/idle_envapi.py runs a long-polling fleet on the
environment work API through the same measurement.

Measured over the window: the server's CPU (% of one core, from its process CPU time), its
peak resident memory, the HTTP requests/s the fleet generates, and enqueue-to-claim latency of
the arriving sessions. Each worker starts at a random point of its first interval so the fleet
does not poll in lockstep. uvicorn closes keep-alive connections idle for 5 s, so most polls
open a new TCP connection, as a real fleet polling every 5 s would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    CREW_PROCESSES,
    Child,
    Config,
    Crew,
    jitter,
    latency_summary,
    paced,
    run_child,
    split,
)
from benchmarks.http import HttpConn, HttpError
from benchmarks.server import ADMIN_AUTH, cpu_seconds, rss_mb, shopfloor_server
from benchmarks.shopfloor_af import register, session_body

if TYPE_CHECKING:
    from tests.processes.server import ServerProcess


async def run(cfg: Config, backend: str, work_dir: Path) -> dict[str, Any]:
    async with shopfloor_server(backend, work_dir, **cfg.af_settings()) as server:
        args = [
            {"url": server.url, "workers": k, "mode": "paced"}
            for k in split(cfg.idle_workers, CREW_PROCESSES)
        ]
        # Each worker starts somewhere in its first interval, so the fleet's polls reach
        # their steady rate only once every worker is into its second cycle: settle for the
        # longest cycle (pollInterval + 40 %, then a hold) plus one hold more.
        hold_s = cfg.poll_hold_ms / 1000
        settle_s = cfg.poll_interval_ms / 1000 * 1.4 + 2 * hold_s
        return await measure_idle(cfg, server, __name__, args, session_body, work_dir, settle_s)


async def measure_idle(
    cfg: Config,
    server: ServerProcess,
    module: str,
    args: list[dict[str, Any]],
    body: Callable[[int], dict[str, Any]],
    work_dir: Path,
    settle_s: float,
    quiet_s: float = 0.0,
    workers: int | None = None,
) -> dict[str, Any]:
    """Start the fleet (`python -m module`, one process per entry of `args`, in paced mode),
    let it settle for `settle_s`, then offer cfg.idle_jobs sessions (`POST /api/v1/sessions`
    with body(i)) one at a time over cfg.idle_seconds. Server CPU and peak RSS are taken
    over that window; the fleet's request rate over go..stop; latency over the claims the
    fleet reports. With `quiet_s`, a fleet that reports its answered requests each second
    (`{"n": count}`) is first measured that long with nothing offered: the server's CPU
    per idle request."""
    crew = Crew(module, args, work_dir / "logs")
    conn = HttpConn.for_url(server.url, ADMIN_AUTH)
    try:
        await asyncio.to_thread(crew.wait_ready, 300)
        log("fleet ready")
        await conn.call("GET", "/healthz")  # the operator connects before the fleet starts
        go = crew.send("go")
        # Let the fleet settle into its staggered rhythm before measuring.
        await settle(conn, settle_s)
        quiet = await measure_quiet(crew, server, quiet_s) if quiet_s > 0 else {}
        cpu0, rss = cpu_seconds(server), [rss_mb(server)]

        async def sample() -> None:
            while True:
                await asyncio.sleep(0.5)
                rss.append(rss_mb(server))

        sampler = asyncio.create_task(sample())

        lock = asyncio.Lock()
        sent = failed = 0

        async def send(i: int) -> None:
            nonlocal sent, failed
            async with lock:  # one connection, one request at a time
                try:
                    await conn.call("POST", "/api/v1/sessions", body(i))
                except (HttpError, OSError) as exc:  # not answered in 60 s, refused, 5xx
                    failed += 1
                    log(f"offer {i} failed: {exc}")
                    return
            sent += 1

        started = time.perf_counter()
        log("offering sessions")
        # An overloaded server answers slowly; give up offering after twice the window.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2 * cfg.idle_seconds + 10):
                await paced(cfg.idle_jobs, cfg.idle_jobs / cfg.idle_seconds, send)
        window = time.perf_counter() - started
        cpu1 = cpu_seconds(server)
        log(f"{sent} sessions queued; waiting for their claims")
        latencies = await asyncio.to_thread(crew.collect_claims, sent, 60, True)
        log(f"{len(latencies)} of {sent} claimed")
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        stop = crew.send("stop")
        finals = await asyncio.to_thread(crew.results)
    finally:
        crew.kill()
        await conn.close()
    requests = sum(int(f["requests"]) for f in finals)
    return {
        **quiet,
        "idle_workers": workers or cfg.idle_workers,
        # A fleet that retries reports its failed requests; one that does not fails the run.
        "failed_requests": sum(int(f.get("errors", 0)) for f in finals),
        "offered": sent,
        "failed_offers": failed,
        "unclaimed": sent - len(latencies),
        "server_cpu_percent": 100 * (cpu1 - cpu0) / window,
        "server_rss_mb": max(rss),
        "requests_per_s": requests / ((stop - go) / 1e9),
        **latency_summary(latencies),
    }


async def measure_quiet(crew: Crew, server: ServerProcess, seconds: float) -> dict[str, float]:
    """The server's CPU per request answered over `seconds` of an idle fleet (nothing is
    offered), from the counts the fleet reports each second."""
    crew.count("n")
    cpu0 = cpu_seconds(server)
    await asyncio.sleep(seconds)
    cpu1 = cpu_seconds(server)
    polls = crew.count("n")
    log(f"quiet: {polls} polls in {seconds:g} s, {cpu1 - cpu0:.2f} s server CPU")
    return {
        "idle_polls_per_s": polls / seconds,
        "idle_server_cpu_percent": 100 * (cpu1 - cpu0) / seconds,
        "cpu_ms_per_idle_poll": 1000 * (cpu1 - cpu0) / polls if polls else 0.0,
    }


async def settle(conn: HttpConn, seconds: float) -> None:
    """Wait `seconds`, keeping the operator's connection open (uvicorn closes one idle for
    5 s): a new connection to a saturated server can wait in its accept queue for longer than
    the whole window, and the latency measured would be that wait, not dispatch."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(2.0, left))
        with contextlib.suppress(HttpError, OSError):
            await conn.call("GET", "/healthz")


def log(message: str) -> None:
    print(f"  idle fleet: {message}", file=sys.stderr, flush=True)


# -- the load process --


async def idle_worker(child: Child, conn: HttpConn, wid: str, poll_s: float, beat_s: float) -> int:
    loop = asyncio.get_running_loop()
    next_beat = loop.time() + random.random() * beat_s
    wait = random.random() * poll_s  # start somewhere in the first interval
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.stop.wait(), wait)
            if child.stop.is_set():
                return conn.requests
            if loop.time() >= next_beat:
                await conn.call("POST", f"/api/workers/{wid}/heartbeat", {"activeCount": 0})
                next_beat += beat_s
            work = (await conn.call("GET", f"/api/workers/{wid}/poll"))["work"]
            for item in work:
                child.claimed(json.loads(item["prompt"])["enq_ts"])
                body = {"workerId": wid, "status": "completed"}
                await conn.call("POST", f"/api/sessions/{item['sessionId']}/status", body)
                child.completed()
            wait = jitter(poll_s)
    finally:
        await conn.close()


async def child_main(child: Child) -> dict[str, Any]:
    url, count = child.args["url"], child.args["workers"]
    registered: list[tuple[HttpConn, str, float]] = []
    for lo in range(0, count, 50):  # register in waves, not 500 connections at once
        wave = await asyncio.gather(*(register(url) for _ in range(min(50, count - lo))))
        registered.extend(wave)
    beat = 30.0
    for conn, _, _ in registered:
        await conn.close()
        conn.requests = 0
    await child.ready()
    tasks = [idle_worker(child, c, wid, poll_s, beat) for c, wid, poll_s in registered]
    requests = await asyncio.gather(*tasks)
    return {"count": 0, "requests": sum(requests)}


if __name__ == "__main__":
    run_child(child_main)
