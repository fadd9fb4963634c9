"""`shopfloor serve --processes N`: refused on SQLite, N real server processes on PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx

from shopfloor.store.pg_notify import channel_name
from tests.conftest import ADMIN_KEY, PG_URL, WORKER_KEY, Backend
from tests.processes.servers import server_env, spawned_children, start_server


def test_more_than_one_process_is_refused_on_sqlite(tmp_path: Path) -> None:
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    result = subprocess.run(
        [sys.executable, "-m", "shopfloor", "serve", "--processes", "3", "--port", "1"],
        env=server_env(backend, tmp_path / "data") | {"COLUMNS": "200"},
        capture_output=True,
        timeout=60,
    )
    out = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 2, out
    assert "--processes > 1 needs PostgreSQL" in out
    assert "SHOPFLOOR_DATABASE_URL=postgresql://" in out
    assert not (tmp_path / "shopfloor.db").exists()  # refused before touching anything


async def listening_processes(schema: str, expected: int) -> int:
    """Connections LISTENing on the schema's channel, once `expected` are there (or 30 s)."""
    conn = await asyncpg.connect(PG_URL)
    try:
        async with asyncio.timeout(30):
            while True:
                count: int = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE query = $1",
                    f'LISTEN "{channel_name(schema)}"',
                )
                if count >= expected:
                    return count
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def test_processes_on_postgres(postgres: Backend, tmp_path: Path) -> None:
    assert postgres.schema is not None
    env = server_env(postgres, tmp_path / "data", processes=2)
    server = start_server(env, tmp_path / "serve.log")
    try:
        assert len(spawned_children(server.process.pid)) == 2, server.output()
        # Both processes ran the app's startup: each holds its own LISTEN connection.
        assert await listening_processes(postgres.schema, 2) == 2
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        worker = {"Authorization": f"Bearer {WORKER_KEY}"}
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            created = await client.post("/api/v1/sessions", json={"prompt": "p"}, headers=admin)
            assert created.status_code == 201, created.text
            reg = await client.post(
                "/api/workers/register", json={"hostname": "h", "capacity": 1}, headers=worker
            )
            worker_id = reg.json()["workerId"]
            polled = await client.get(f"/api/workers/{worker_id}/poll", headers=worker)
            assert polled.json()["claimedSessionIds"] == [created.json()["sessionId"]]
    finally:
        server.stop()
