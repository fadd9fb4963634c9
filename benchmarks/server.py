"""The server under test: a real `shopfloor serve` process (uvicorn, uvloop, httptools), started
with the test suite's helper, on a fresh SQLite file or a fresh Postgres database."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from benchmarks.common import PG_DSN, drop_pg_database, fresh_pg_database

if TYPE_CHECKING:
    from tests.processes.server import ServerProcess

PG_DATABASE = f"shopfloor_bench_{os.getpid()}"  # one per harness run: runs may overlap
WORKER_KEY = "bench-worker-key"
ADMIN_KEY = "bench-admin-key"


@contextlib.asynccontextmanager
async def shopfloor_server(
    backend: str, work_dir: Path, **settings: str
) -> AsyncIterator[ServerProcess]:
    # The test suite's helpers start and stop the process; imported here, not at the top,
    # so that load processes (which import this module's constants) stay light.
    from tests.conftest import Backend
    from tests.processes.server import server_env, start_server

    await asyncio.to_thread(_fresh_dir, work_dir)
    if backend == "sqlite":
        spec = Backend("sqlite", f"sqlite:///{work_dir / 'shopfloor.db'}", None)
    else:
        spec = Backend("postgres", await fresh_pg_database(PG_DATABASE), None)
    keys = {"SHOPFLOOR_WORKER_API_KEY": WORKER_KEY, "SHOPFLOOR_ADMIN_API_KEY": ADMIN_KEY}
    env = server_env(spec, work_dir / "data", **keys, **settings)
    # Migrating a fresh database took over 30 s on the shared 2-core machine at times.
    log = work_dir / f"server-{backend}.log"
    server = await asyncio.to_thread(lambda: start_server(env, log, up_within=120))
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)
        if backend == "postgres":
            await drop_pg_database(PG_DATABASE)


def _fresh_dir(work_dir: Path) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    for name in ("shopfloor.db", "shopfloor.db-wal", "shopfloor.db-shm"):
        (work_dir / name).unlink(missing_ok=True)


async def audit_progress(backend: str, work_dir: Path) -> tuple[int, int]:
    """(session claims and ends in the audit chain, facts still waiting in the outbox), read
    straight from the server's database."""
    chained = (
        "SELECT count(*) FROM audit_events WHERE event_type IN ('session.claimed', 'session.ended')"
    )
    waiting = "SELECT count(*) FROM audit_outbox"
    if backend == "sqlite":
        import sqlite3

        def read() -> tuple[int, int]:
            with contextlib.closing(sqlite3.connect(work_dir / "shopfloor.db", timeout=30)) as db:
                return db.execute(chained).fetchone()[0], db.execute(waiting).fetchone()[0]

        return await asyncio.to_thread(read)
    import asyncpg

    conn = await asyncpg.connect(PG_DSN.rsplit("/", 1)[0] + "/" + PG_DATABASE, timeout=10)
    try:
        return int(await conn.fetchval(chained)), int(await conn.fetchval(waiting))
    finally:
        await conn.close()


def _tree(server: ServerProcess) -> list[psutil.Process]:
    """The server and the processes it started (`--processes N`: uvicorn's workers)."""
    root = psutil.Process(server.proc.pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(server: ServerProcess) -> float:
    total = 0.0
    for proc in _tree(server):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def rss_mb(server: ServerProcess) -> float:
    total = 0
    for proc in _tree(server):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / 2**20


def serving_processes(server: ServerProcess) -> dict[int, int]:
    """Which of the server's processes holds each open client connection: {client port: pid}
    (with `--processes N` the kernel hands each new connection to one of them)."""
    port = int(server.url.rsplit(":", 1)[1])
    found: dict[int, int] = {}
    for proc in _tree(server):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            for conn in proc.net_connections(kind="tcp"):
                if conn.laddr and conn.laddr.port == port and conn.raddr:
                    found[conn.raddr.port] = proc.pid
    return found


WORKER_AUTH = {"Authorization": f"Bearer {WORKER_KEY}"}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
