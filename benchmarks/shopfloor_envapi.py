"""shopfloor through the environment work API (issue 5), on SQLite or Postgres.

SLOT: until that API is merged, `run` probes the server's OpenAPI document and is skipped
with the reason "environment work API not on this branch yet".

Enqueue: `POST /api/v1/sessions` with `environmentId` (one per request), the payload JSON as
the prompt and its `enq_ts` also in the session's metadata (a poll returns the work item's
metadata, not the prompt). Worker, as `anthropic.lib.environments.iter_work` does it on the
Anthropic path: `GET /v1/environments/{env}/work/poll?block_ms=999` (long poll; the body is
`null` when nothing came), then `POST .../work/{id}/ack`, then a graceful
`POST .../work/{id}/stop` (ends at once: the item never heartbeated). Each worker sends its
own `Anthropic-Worker-ID` and the operator key. Claim time = when the poll response arrived.
In drain mode a `null` poll ends the worker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CREW_PROCESSES,
    POSTGRES,
    Child,
    Config,
    Crew,
    DatabaseCpu,
    Skip,
    drain_result,
    paced_latency,
    payload,
    run_child,
    split,
)
from benchmarks.http import HttpConn, HttpError
from benchmarks.server import ADMIN_AUTH, cpu_seconds, shopfloor_server
from benchmarks.shopfloor_af import enqueue_many

ROUTE_PREFIXES = ("/v1/environments", "/api/v1/cloud/environments")
NOT_HERE = "environment work API not on this branch yet"
BASE = "/v1/environments"
BLOCK_MS = 999  # the longest long poll the API allows


async def has_envapi(url: str) -> bool:
    conn = HttpConn.for_url(url)
    try:
        paths = (await conn.call("GET", "/openapi.json"))["paths"]
    finally:
        await conn.close()
    return any(p.startswith(ROUTE_PREFIXES) for p in paths)


def work_body(env: str, i: int) -> dict[str, Any]:
    job = payload(i)
    return {
        "prompt": json.dumps(job),
        "environmentId": env,
        "metadata": {"enq_ts": str(job["enq_ts"])},
    }


async def create_environment(url: str) -> str:
    """A self-hosted environment to queue the work in; Skip if this server has no such API."""
    if not await has_envapi(url):
        raise Skip(NOT_HERE)
    admin = HttpConn.for_url(url, ADMIN_AUTH)
    try:
        body = {"name": "bench", "config": {"type": "self_hosted"}}
        return str((await admin.call("POST", BASE, body))["id"])
    finally:
        await admin.close()


async def run(cfg: Config, backend: str, work_dir: Path) -> dict[str, Any]:
    async with shopfloor_server(backend, work_dir) as server:
        env = await create_environment(server.url)
        result: dict[str, Any] = {}
        enqueue_s = await enqueue_many(server.url, cfg.jobs, body=lambda i: work_body(env, i))
        result["enqueue_jobs_per_s"] = cfg.jobs / enqueue_s
        crew = Crew(__name__, _args(cfg, server.url, env, "drain"), work_dir / "logs")
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
        result["requests_per_s"] = sum(int(f["requests"]) for f in finals) / result["drain_seconds"]
        result["server_cpu_percent"] = 100 * (cpu1 - cpu0) / result["drain_seconds"]
        if backend == "postgres":
            result["database_cpu_percent"] = 100 * database.seconds / result["drain_seconds"]

        conn = HttpConn.for_url(server.url, ADMIN_AUTH)

        async def send(i: int) -> None:
            await conn.call("POST", "/api/v1/sessions", work_body(env, i))

        try:
            args = _args(cfg, server.url, env, "paced")
            result.update(await paced_latency(cfg, __name__, args, work_dir, send))
        finally:
            await conn.close()
        return result


def _args(cfg: Config, url: str, env: str, mode: str) -> list[dict[str, Any]]:
    return [
        {"url": url, "env": env, "workers": k, "mode": mode, "first": n * cfg.workers}
        for n, k in enumerate(split(cfg.workers, CREW_PROCESSES))
    ]


# -- the load process --


def worker_conn(url: str, name: str, source: str | None = None) -> HttpConn:
    """A worker's own connection: the operator key and its `Anthropic-Worker-ID`."""
    return HttpConn.for_url(url, {**ADMIN_AUTH, "Anthropic-Worker-ID": name}, source)


async def take_one(child: Child, conn: HttpConn, env: str) -> bool | None:
    """One long poll and, if it brought an item, its ack and graceful stop. None: the poll
    came back empty; False: the item went to another worker before our ack; True: done."""
    item = await conn.call("GET", f"{BASE}/{env}/work/poll?block_ms={BLOCK_MS}")
    if item is None:
        return None
    child.claimed(int(item["metadata"]["enq_ts"]))
    try:
        await conn.call("POST", f"{BASE}/{env}/work/{item['id']}/ack")
    except HttpError:  # delivered to another worker meanwhile: not ours to run
        return False
    await conn.call("POST", f"{BASE}/{env}/work/{item['id']}/stop", {})
    child.completed()
    return True


async def env_worker(child: Child, url: str, env: str, name: str, drain: bool) -> tuple[int, int]:
    conn = worker_conn(url, name)
    done = 0
    try:
        while not child.stop.is_set():
            outcome = await take_one(child, conn, env)
            if outcome is None and drain:
                break
            done += bool(outcome)
        return done, conn.requests
    finally:
        await conn.close()


async def child_main(child: Child) -> dict[str, Any]:
    a = child.args
    await child.ready()
    names = [f"bench-{a['first'] + n}" for n in range(a["workers"])]
    drain = a["mode"] == "drain"
    outcomes = await asyncio.gather(
        *(env_worker(child, a["url"], a["env"], name, drain) for name in names)
    )
    return {"count": sum(d for d, _ in outcomes), "requests": sum(r for _, r in outcomes)}


if __name__ == "__main__":
    run_child(child_main)
