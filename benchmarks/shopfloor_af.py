"""shopfloor through the AgentFactory worker protocol, on SQLite or Postgres.

Enqueue: `POST /api/v1/sessions` (operator API, one session per request, the payload JSON as
the prompt). Worker: `POST /api/workers/register` (capacity 1), then `GET .../poll`, which
pre-claims; for each item `POST /api/sessions/{id}/status {"status": "completed"}` (the
protocol's shortest claim-to-done path). After a poll that returned work the worker polls
again at once; after an empty poll it sleeps the server's pollInterval + 0-40 % (the
af-worker's wait). The server holds an idle worker's empty poll up to SHOPFLOOR_POLL_HOLD_MS
(its default, 1 s) for work to arrive. In drain mode an empty poll ends the worker. Claim
time = when the poll response arrived at the worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CREW_PROCESSES,
    POSTGRES,
    Child,
    Config,
    Crew,
    DatabaseCpu,
    bounded,
    drain_result,
    jitter,
    paced_latency,
    payload,
    run_child,
    split,
)
from benchmarks.http import HttpConn
from benchmarks.server import (
    ADMIN_AUTH,
    WORKER_AUTH,
    audit_progress,
    cpu_seconds,
    shopfloor_server,
)

# How long the harness waits, after a drain, for the audit appender to chain every claim and
# end (2 N entries) before it records the run as not caught up.
AUDIT_CATCH_UP_S = 300.0


def session_body(i: int) -> dict[str, Any]:
    return {"prompt": json.dumps(payload(i))}


async def enqueue_many(
    url: str,
    jobs: int,
    concurrency: int = 16,
    body: Callable[[int], dict[str, Any]] = session_body,
) -> float:
    """POST /api/v1/sessions `jobs` times, `concurrency` in flight; returns the seconds."""
    conns = [HttpConn.for_url(url, ADMIN_AUTH) for _ in range(concurrency)]
    free: asyncio.Queue[HttpConn] = asyncio.Queue()
    for c in conns:
        free.put_nowait(c)

    async def send(i: int) -> None:
        conn = await free.get()
        try:
            await conn.call("POST", "/api/v1/sessions", body(i))
        finally:
            free.put_nowait(conn)

    try:
        return await bounded(jobs, concurrency, send)
    finally:
        for c in conns:
            await c.close()


async def run(cfg: Config, backend: str, work_dir: Path, audit: bool = True) -> dict[str, Any]:
    """`audit`: SHOPFLOOR_AUDIT_SESSIONS (session claims and ends in the audit chain)."""
    settings = {**cfg.af_settings(), "SHOPFLOOR_AUDIT_SESSIONS": str(audit).lower()}
    async with shopfloor_server(backend, work_dir, **settings) as server:
        result: dict[str, Any] = {}
        # -- drain: N queued first, then K workers claim and complete them all --
        enqueue_s = await enqueue_many(server.url, cfg.jobs)
        result["enqueue_jobs_per_s"] = cfg.jobs / enqueue_s
        crew = Crew(__name__, _args(cfg, server.url, "drain"), work_dir / "logs")
        try:
            await asyncio.to_thread(crew.wait_ready)
            cpu0 = cpu_seconds(server)
            with DatabaseCpu(POSTGRES) as database:
                go = crew.send("go")
                finals = await asyncio.to_thread(crew.results)
            cpu1 = cpu_seconds(server)
        finally:
            crew.kill()
        result.update(drain_result(cfg.jobs, go, finals))
        requests = sum(int(f["requests"]) for f in finals)
        result["requests_per_s"] = requests / result["drain_seconds"]
        result["server_cpu_percent"] = 100 * (cpu1 - cpu0) / result["drain_seconds"]
        if backend == "postgres":
            result["database_cpu_percent"] = 100 * database.seconds / result["drain_seconds"]
        if audit:
            result.update(await audit_catch_up(cfg, backend, work_dir, result["drain_seconds"]))
        # -- latency: K idle workers, jobs offered one at a time at a fixed rate --
        result.update(await paced_phase(cfg, server.url, work_dir))
        return result


async def audit_catch_up(
    cfg: Config, backend: str, work_dir: Path, drain_s: float
) -> dict[str, Any]:
    """How far the audit chain was behind when the drain ended, and when it had every claim
    and end (2 N entries): entries/s over the drain, and from go to caught up."""
    ended = time.monotonic()
    chained, waiting = await audit_progress(backend, work_dir)
    out: dict[str, Any] = {
        "audit_entries_per_s_during_drain": chained / drain_s,
        "audit_waiting_at_drain_end": waiting,
    }
    while chained < 2 * cfg.jobs and time.monotonic() - ended < AUDIT_CATCH_UP_S:
        await asyncio.sleep(0.05)
        chained, waiting = await audit_progress(backend, work_dir)
    if chained >= 2 * cfg.jobs:
        caught_up = drain_s + time.monotonic() - ended
        out["audit_caught_up_seconds"] = caught_up
        out["audit_entries_per_s"] = chained / caught_up
    return out


async def paced_phase(cfg: Config, url: str, work_dir: Path) -> dict[str, Any]:
    conn = HttpConn.for_url(url, ADMIN_AUTH)

    async def send(i: int) -> None:
        await conn.call("POST", "/api/v1/sessions", session_body(i))

    try:
        return await paced_latency(cfg, __name__, _args(cfg, url, "paced"), work_dir, send)
    finally:
        await conn.close()


def _args(cfg: Config, url: str, mode: str) -> list[dict[str, Any]]:
    return [{"url": url, "workers": k, "mode": mode} for k in split(cfg.workers, CREW_PROCESSES)]


# -- the load process --


async def register(url: str) -> tuple[HttpConn, str, float]:
    conn = HttpConn.for_url(url, WORKER_AUTH)
    reg = await conn.call("POST", "/api/workers/register", {"hostname": "bench", "capacity": 1})
    return conn, reg["workerId"], reg["pollInterval"] / 1000


async def af_worker(
    child: Child, conn: HttpConn, wid: str, interval: float, drain: bool
) -> tuple[int, int]:
    done = 0
    try:
        while not child.stop.is_set():
            work = (await conn.call("GET", f"/api/workers/{wid}/poll"))["work"]
            if not work:
                if drain:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.stop.wait(), jitter(interval))
                continue
            for item in work:
                child.claimed(json.loads(item["prompt"])["enq_ts"])
                body = {"workerId": wid, "status": "completed"}
                await conn.call("POST", f"/api/sessions/{item['sessionId']}/status", body)
                done += 1
                child.completed()
        return done, conn.requests - 1  # registration is not part of the timed run
    finally:
        await conn.close()


async def child_main(child: Child) -> dict[str, Any]:
    args = child.args
    registered = await asyncio.gather(*(register(args["url"]) for _ in range(args["workers"])))
    await child.ready()
    drain = args["mode"] == "drain"
    outcomes = await asyncio.gather(
        *(af_worker(child, conn, wid, interval, drain) for conn, wid, interval in registered)
    )
    return {"count": sum(d for d, _ in outcomes), "requests": sum(r for _, r in outcomes)}


if __name__ == "__main__":
    run_child(child_main)
