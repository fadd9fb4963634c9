"""SAQ (PyPI `saq` with hiredis) on the local Redis.

Enqueue: `Queue.enqueue` with up to 32 in flight (drain) or one job per call (latency).
Worker: per load process one `saq.Worker(concurrency=<share of K>)` with a no-op function;
`burst=True` makes it exit once the queue is empty. Claim time = when the function starts."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CREW_PROCESSES,
    REDIS,
    REDIS_URL,
    Child,
    Config,
    Crew,
    DatabaseCpu,
    bounded,
    drain_result,
    paced_latency,
    payload,
    run_child,
    split,
)


async def run(cfg: Config, work_dir: Path) -> dict[str, Any]:
    from saq import Queue

    name = f"shopfloor-bench-{os.getpid()}"
    queue = Queue.from_url(REDIS_URL, name=name)
    await queue.connect()
    try:
        await clear(queue)

        async def send(i: int) -> None:
            await queue.enqueue("noop", **payload(i))

        enqueue_s = await bounded(cfg.jobs, 32, send)
        result: dict[str, Any] = {"enqueue_jobs_per_s": cfg.jobs / enqueue_s}
        crew = Crew(__name__, _args(cfg, name, "drain"), work_dir / "logs")
        try:
            await asyncio.to_thread(crew.wait_ready)
            with DatabaseCpu(REDIS) as database:
                go = crew.send("go")
                finals = await asyncio.to_thread(crew.results)
        finally:
            crew.kill()
        result.update(drain_result(cfg.jobs, go, finals))
        result["database_cpu_percent"] = 100 * database.seconds / result["drain_seconds"]
        result.update(await paced_latency(cfg, __name__, _args(cfg, name, "paced"), work_dir, send))
        return result
    finally:
        await clear(queue)
        await queue.disconnect()


async def clear(queue: Any) -> None:
    keys = [k async for k in queue.redis.scan_iter(match=f"saq:{queue.name}*")]
    if keys:
        await queue.redis.delete(*keys)


def _args(cfg: Config, name: str, mode: str) -> list[dict[str, Any]]:
    return [{"queue": name, "workers": k, "mode": mode} for k in split(cfg.workers, CREW_PROCESSES)]


async def child_main(child: Child) -> dict[str, Any]:
    from saq import Queue, Worker

    args = child.args
    done = 0

    async def noop(ctx: Any, *, i: int, enq_ts: int, pad: str) -> None:
        nonlocal done
        child.claimed(enq_ts)
        done += 1
        child.completed()

    queue = Queue.from_url(REDIS_URL, name=args["queue"])
    drain = args["mode"] == "drain"
    worker = Worker(
        queue,
        functions=[("noop", noop)],
        concurrency=args["workers"],
        burst=drain,
        dequeue_timeout=1.0 if drain else 0.0,
    )
    await queue.connect()
    await child.ready()
    runner = asyncio.create_task(worker.start())
    if drain:
        await runner
    else:
        await child.stop.wait()
        await worker.stop()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    await queue.disconnect()
    return {"count": done}


if __name__ == "__main__":
    run_child(child_main)
