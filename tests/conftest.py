"""Shared fixtures: real SQLite files, the real PostgreSQL at 127.0.0.1:5432 (database `test`,
one fresh schema per test), the app in-process with a manual clock, and real server processes.

In CI (CI=true) an unreachable PostgreSQL fails the run; elsewhere its tests are skipped."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shopfloor.app import create_app
from shopfloor.clock import ManualClock
from shopfloor.config import Settings
from shopfloor.store import Store, open_store

PG_URL = os.environ.get("SHOPFLOOR_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")
WORKER_KEY = "test-worker-key"
ADMIN_KEY = "test-admin-key"
BACKENDS = ["sqlite", "postgres"]


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    schema: str | None


def _require_postgres() -> None:
    problem = _pg_check()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL at {PG_URL} is unreachable in CI: {problem}")
    pytest.skip(f"PostgreSQL unreachable: {problem}")


_PG_STATE: dict[str, str | None] = {}


def _pg_check() -> str | None:
    if "problem" not in _PG_STATE:
        import asyncio

        import asyncpg

        async def probe() -> None:
            conn = await asyncpg.connect(PG_URL, timeout=5)
            await conn.close()

        try:
            asyncio.run(probe())
            _PG_STATE["problem"] = None
        except Exception as exc:
            _PG_STATE["problem"] = f"{type(exc).__name__}: {exc}"
    return _PG_STATE["problem"]


def _drop_schema(schema: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(PG_URL, timeout=5)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
        return
    _require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield Backend("postgres", PG_URL, schema)
    _drop_schema(schema)


@pytest.fixture
def postgres() -> Iterator[Backend]:
    """A fresh schema on the real PostgreSQL, for tests of what only PostgreSQL does
    (LISTEN/NOTIFY, several server processes). Never skipped in CI."""
    _require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield Backend("postgres", PG_URL, schema)
    _drop_schema(schema)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    st = await open_store(backend.url, schema=backend.schema)
    yield st
    await st.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_settings(backend: Backend, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": backend.url,
        "database_schema": backend.schema,
        "data_dir": tmp_path / "data",
        "worker_api_key": WORKER_KEY,
        "admin_api_key": ADMIN_KEY,
        # An empty poll answers at once unless a test asks for a hold (tests/agentfactory).
        "poll_hold_ms": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def running_app(settings: Settings, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with its lifespan, spoken to in-process over ASGI."""
    app = create_app(settings, clock, run_upkeep=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shopfloor") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def api(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_settings(backend, tmp_path), clock) as client:
        yield client
