"""The server under test: a real `shopfloor serve` process (uvicorn, uvloop, httptools), started
with the test suite's helper, on a fresh SQLite file or a fresh Postgres database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import psutil

from benchmarks.common import drop_pg_database, fresh_pg_database
from tests.conftest import ADMIN_KEY, WORKER_KEY, Backend
from tests.processes.server import ServerProcess, server_env, start_server

PG_DATABASE = "shopfloor_bench"


@contextlib.asynccontextmanager
async def shopfloor_server(
    backend: str, work_dir: Path, **settings: str
) -> AsyncIterator[ServerProcess]:
    work_dir.mkdir(parents=True, exist_ok=True)
    if backend == "sqlite":
        db = work_dir / "shopfloor.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        spec = Backend("sqlite", f"sqlite:///{db}", None)
    else:
        spec = Backend("postgres", await fresh_pg_database(PG_DATABASE), None)
    env = server_env(spec, work_dir / "data", **settings)
    server = await asyncio.to_thread(start_server, env, work_dir / f"server-{backend}.log")
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)
        if backend == "postgres":
            await drop_pg_database(PG_DATABASE)


def cpu_seconds(server: ServerProcess) -> float:
    times = psutil.Process(server.proc.pid).cpu_times()
    return float(times.user + times.system)


def rss_mb(server: ServerProcess) -> float:
    return float(psutil.Process(server.proc.pid).memory_info().rss) / 2**20


WORKER_AUTH = {"Authorization": f"Bearer {WORKER_KEY}"}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
