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
    Child,
    Config,
    Crew,
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


async def run(cfg: Config, backend: str, work_dir: Path) -> dict[str, Any]:
    async with shopfloor_server(backend, work_dir) as server:
        if not await has_envapi(server.url):
            raise Skip(NOT_HERE)
        admin = HttpConn.for_url(server.url, ADMIN_AUTH)
        try:
            env = (
                await admin.call("POST", BASE, {"name": "bench", "config": {"type": "self_hosted"}})
            )["id"]
        finally:
            await admin.close()
        result: dict[str, Any] = {}
        enqueue_s = await enqueue_many(server.url, cfg.jobs, body=lambda i: work_body(env, i))
        result["enqueue_jobs_per_s"] = cfg.jobs / enqueue_s
        crew = Crew(__name__, _args(cfg, server.url, env, "drain"), work_dir / "logs")
        try:
            await asyncio.to_thread(crew.wait_ready)
            cpu0 = cpu_seconds(server)
            go = crew.send("go")
            finals = await asyncio.to_thread(crew.results)
            cpu1 = cpu_seconds(server)
        finally:
            crew.kill()
        result.update(drain_result(cfg.jobs, go, finals))
        result["requests_per_s"] = sum(int(f["requests"]) for f in finals) / result["drain_seconds"]
        result["server_cpu_percent"] = 100 * (cpu1 - cpu0) / result["drain_seconds"]

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


async def env_worker(child: Child, url: str, env: str, name: str, drain: bool) -> tuple[int, int]:
    conn = HttpConn.for_url(url, {**ADMIN_AUTH, "Anthropic-Worker-ID": name})
    done = 0
    try:
        while not child.stop.is_set():
            item = await conn.call("GET", f"{BASE}/{env}/work/poll?block_ms=999")
            if item is None:
                if drain:
                    break
                continue
            child.claimed(int(item["metadata"]["enq_ts"]))
            try:
                await conn.call("POST", f"{BASE}/{env}/work/{item['id']}/ack")
            except HttpError:  # delivered to another worker meanwhile: not ours to run
                continue
            await conn.call("POST", f"{BASE}/{env}/work/{item['id']}/stop", {})
            done += 1
            child.completed()
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
