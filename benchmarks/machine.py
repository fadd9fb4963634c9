"""What the machine is, read off the machine at the start of a run."""

from __future__ import annotations

import os
import platform
import sqlite3
from importlib import metadata
from typing import Any

import psutil

from benchmarks.common import PG_DSN, REDIS_URL

PACKAGES = [
    *("shopfloor", "fastapi", "uvicorn", "uvloop", "httptools", "sqlalchemy", "asyncpg"),
    *("pgqueuer", "procrastinate", "psycopg", "saq", "redis", "hiredis"),
]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


async def _pg_version() -> str:
    try:
        import asyncpg

        conn = await asyncpg.connect(PG_DSN, timeout=5)
        try:
            version = await conn.fetchval("SHOW server_version")
            sync = await conn.fetchval("SHOW synchronous_commit")
            return f"{version} (synchronous_commit={sync})"
        finally:
            await conn.close()
    except Exception as exc:
        return f"unreachable: {exc}"


async def _redis_version() -> str:
    try:
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL)
        try:
            info = await client.info("server")
            persistence = await client.info("persistence")
            aof = "yes" if persistence.get("aof_enabled") else "no"
            return f"{info['redis_version']} (appendonly={aof})"
        finally:
            await client.aclose()
    except Exception as exc:
        return f"unreachable: {exc}"


async def describe_machine() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlite_settings": "journal_mode=WAL, synchronous=NORMAL (shopfloor's defaults)",
        "postgres": await _pg_version(),
        "redis": await _redis_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages": versions,
    }
