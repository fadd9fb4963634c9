"""SLOT: shopfloor through the environment work API (issue 5), on SQLite or Postgres.

Until the routes are merged this workload probes a real server's OpenAPI document and is
skipped with the reason below. To enable it after the merge, write `child_main` (register or
authenticate the way `anthropic.lib.environments.iter_work` does, long-poll for work, ack,
report completion) on the pattern of shopfloor_af.py, and make `run` mirror shopfloor_af.run:
enqueue N, drain with a crew, then `paced_latency`. Nothing else in the harness changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import Config, Skip
from benchmarks.http import HttpConn
from benchmarks.server import shopfloor_server

ROUTE_PREFIXES = ("/v1/environments", "/api/v1/cloud/environments")
NOT_HERE = "environment work API not on this branch yet"


async def has_envapi(url: str) -> bool:
    conn = HttpConn.for_url(url)
    try:
        paths = (await conn.call("GET", "/openapi.json"))["paths"]
    finally:
        await conn.close()
    return any(p.startswith(ROUTE_PREFIXES) for p in paths)


async def run(cfg: Config, backend: str, work_dir: Path) -> dict[str, Any]:
    async with shopfloor_server(backend, work_dir) as server:
        if not await has_envapi(server.url):
            raise Skip(NOT_HERE)
    raise Skip(
        "environment work API routes found, but its workload is not written yet: "
        "see benchmarks/shopfloor_envapi.py"
    )
