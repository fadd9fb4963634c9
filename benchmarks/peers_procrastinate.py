"""Procrastinate (PyPI `procrastinate`, psycopg 3 connector) on the same Postgres.

Enqueue: `batch_defer_async` in batches of 1,000 (drain) or `defer_async` one job per call
(latency). Worker: per load process `run_worker_async(concurrency=<share of K>)` with
LISTEN/NOTIFY on; `wait=False` makes it exit once the queue is empty. Claim time = when the
task function starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
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

DATABASE = f"bench_procrastinate_{os.getpid()}"
BATCH = 1000
QUEUE = "bench"


def make_app(url: str, on_job: Any = None) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop", queue=QUEUE)
    async def noop(i: int, enq_ts: int, pad: str) -> None:
        if on_job is not None:
            on_job(enq_ts)

    return app


async def run(cfg: Config, work_dir: Path) -> dict[str, Any]:
    url = await fresh_pg_database(DATABASE)
    app = make_app(url)
    try:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            task = app.tasks["noop"]
            start = time.perf_counter()
            for lo in range(0, cfg.jobs, BATCH):
                n = min(BATCH, cfg.jobs - lo)
                await task.batch_defer_async(*(payload(lo + i) for i in range(n)))
            result: dict[str, Any] = {
                "enqueue_jobs_per_s": cfg.jobs / (time.perf_counter() - start)
            }
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
                await task.defer_async(**payload(i))

            result.update(
                await paced_latency(cfg, __name__, _args(cfg, url, "paced"), work_dir, send)
            )
            return result
    finally:
        await drop_pg_database(DATABASE)


def _args(cfg: Config, url: str, mode: str) -> list[dict[str, Any]]:
    return [{"url": url, "workers": k, "mode": mode} for k in split(cfg.workers, CREW_PROCESSES)]


async def child_main(child: Child) -> dict[str, Any]:
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    args = child.args
    done = 0

    def on_job(enq_ts: int) -> None:
        nonlocal done
        child.claimed(enq_ts)
        done += 1
        child.completed()

    app = make_app(args["url"], on_job)
    async with app.open_async():
        await child.ready()
        options: dict[str, Any] = {
            "queues": [QUEUE],
            "concurrency": args["workers"],
            "install_signal_handlers": False,
        }
        if args["mode"] == "drain":
            await app.run_worker_async(wait=False, **options)
        else:
            runner = asyncio.create_task(app.run_worker_async(**options))
            await child.stop.wait()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
    return {"count": done}


if __name__ == "__main__":
    run_child(child_main)
