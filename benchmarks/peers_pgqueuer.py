"""PgQueuer (PyPI `pgqueuer`, asyncpg driver) on the same Postgres.

Enqueue: `Queries.enqueue` in batches of 1,000 (drain) or one job per call (latency).
Worker: per load process one `QueueManager` with a no-op entrypoint, `max_concurrent_tasks`
= its share of K and `batch_size` = half of that (PgQueuer requires max >= 2 x batch);
`mode=drain` exits when the queue is empty. Claim time = when the entrypoint starts."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CREW_PROCESSES,
    POSTGRES,
    Child,
    Config,
    Crew,
    DatabaseCpu,
    drain_result,
    drop_pg_database,
    fresh_pg_database,
    paced_latency,
    payload,
    run_child,
    split,
)

DATABASE = f"bench_pgqueuer_{os.getpid()}"
BATCH = 1000


async def run(cfg: Config, work_dir: Path) -> dict[str, Any]:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    url = await fresh_pg_database(DATABASE)
    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        loop = asyncio.get_running_loop()
        start = loop.time()
        for lo in range(0, cfg.jobs, BATCH):
            n = min(BATCH, cfg.jobs - lo)
            await queries.enqueue(
                ["noop"] * n, [json.dumps(payload(lo + i)).encode() for i in range(n)], [0] * n
            )
        result: dict[str, Any] = {"enqueue_jobs_per_s": cfg.jobs / (loop.time() - start)}
        crew = Crew(__name__, _args(cfg, url, "drain"), work_dir / "logs")
        try:
            await asyncio.to_thread(crew.wait_ready)
            with DatabaseCpu(POSTGRES) as database:
                go = crew.send("go")
                finals = await asyncio.to_thread(crew.results)
        finally:
            crew.kill()
        result.update(drain_result(cfg.jobs, go, finals))
        result["database_cpu_percent"] = 100 * database.seconds / result["drain_seconds"]

        async def send(i: int) -> None:
            await queries.enqueue("noop", json.dumps(payload(i)).encode(), 0)

        result.update(await paced_latency(cfg, __name__, _args(cfg, url, "paced"), work_dir, send))
        return result
    finally:
        await conn.close()
        await drop_pg_database(DATABASE)


def _args(cfg: Config, url: str, mode: str) -> list[dict[str, Any]]:
    return [{"url": url, "workers": k, "mode": mode} for k in split(cfg.workers, CREW_PROCESSES)]


async def child_main(child: Child) -> dict[str, Any]:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.types import QueueExecutionMode

    args = child.args
    conn = await asyncpg.connect(args["url"])
    qm = QueueManager(Queries(AsyncpgDriver(conn)))
    done = 0

    @qm.entrypoint("noop")
    async def noop(job: Any) -> None:
        nonlocal done
        child.claimed(json.loads(job.payload)["enq_ts"])
        done += 1
        child.completed()

    k = max(2, args["workers"])
    batch = max(1, k // 2)
    await child.ready()
    if args["mode"] == "drain":
        await qm.run(batch_size=batch, max_concurrent_tasks=k, mode=QueueExecutionMode.drain)
    else:
        runner = asyncio.create_task(qm.run(batch_size=batch, max_concurrent_tasks=k))
        await child.stop.wait()
        qm.shutdown.set()
        await runner
    await conn.close()
    return {"count": done}


if __name__ == "__main__":
    run_child(child_main)
