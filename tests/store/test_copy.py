"""`shopfloor db copy`: a SQLite database moved into another database (PostgreSQL, or another
SQLite file) row for row, refusing a non-empty target unless told, verifying row counts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from typer.testing import CliRunner

from shopfloor.cli.main import app
from shopfloor.clock import ManualClock
from shopfloor.service.dispatch import Dispatcher, NewSession, StatusReport
from shopfloor.store import open_store
from shopfloor.store.schema import metadata
from shopfloor.store.sql import SqlStore
from shopfloor.store.tenancy_records import DEFAULT_ORG, REGISTRATION_KEY, ApiKeyRecord
from tests.conftest import Backend

runner = CliRunner()


async def seed(url: str) -> None:
    """A small but complete history: settings, a token, workers, sessions in every state."""
    store = await open_store(url)
    d = Dispatcher(store, ManualClock(), worker_ttl_seconds=60)
    await store.put_setting_if_absent("admin_key_sha256", "0" * 64)
    await store.insert_api_key(
        ApiKeyRecord(
            id="reg_1",
            org_id=DEFAULT_ORG,
            key_type=REGISTRATION_KEY,
            token_hash="h" * 64,
            key_prefix="rsp_live_",
            created_at=1,
        )
    )
    w = await d.register_worker(
        hostname="box", capacity=3, version="1", projects=["p"], machine_id="m"
    )
    for n in range(7):
        await d.create_session(
            NewSession(prompt=f"job {n}", project="p", extra={"n": n, "tags": ["a"]})
        )
    first, second, *_ = (await d.poll(w.id)).claimed
    await d.report_status(first.id, w.id, StatusReport("running", provider_session_id="x"))
    await d.report_status(
        first.id, w.id, StatusReport("completed", total_cost_usd=0.25, input_tokens=10)
    )
    await d.nack(second.id, w.id, "busy")
    assert isinstance(store, SqlStore)
    async with store.db.begin() as conn:
        for table in metadata.sorted_tables:
            if await conn.scalar(sa.select(sa.func.count()).select_from(table)) == 0:
                await conn.execute(table.insert().values(synthetic_row(table)))
    await store.close()


def synthetic_row(table: sa.Table) -> dict[str, Any]:
    """One row of plausible values for a table the domain seed left empty, so that every
    table (and every column type) a later feature adds is covered by the copy too."""
    row: dict[str, Any] = {}
    for column in table.columns:
        kind = column.type
        if column.primary_key and column.autoincrement is True:
            continue
        if isinstance(kind, sa.Boolean):
            row[column.name] = True
        elif isinstance(kind, sa.JSON):
            row[column.name] = {"key": "value", "list": [1, 2]}
        elif isinstance(kind, sa.Integer):  # BigInteger too
            row[column.name] = 7
        elif isinstance(kind, sa.Float):
            row[column.name] = 0.5
        elif isinstance(kind, sa.String):  # Text too
            limit = kind.length or 64
            row[column.name] = f"{table.name}.{column.name}"[:limit]
        else:
            raise AssertionError(f"no synthetic value for {table.name}.{column.name}: {kind}")
    return row


async def dump(url: str, schema: str | None) -> dict[str, list[dict[str, Any]]]:
    store = await open_store(url, schema=schema)
    assert isinstance(store, SqlStore)
    out: dict[str, list[dict[str, Any]]] = {}
    async with store.db.connect() as conn:
        for table in metadata.sorted_tables:
            rows = await conn.execute(sa.select(table).order_by(*table.primary_key.columns))
            out[table.name] = [dict(r._mapping) for r in rows]
    await store.close()
    return out


def copy(source: str, target: Backend, *extra: str) -> Any:
    args = ["db", "copy", "--from", source, "--to", target.url]
    if target.schema:
        args += ["--to-schema", target.schema]
    return runner.invoke(app, [*args, *extra])


def test_copy_moves_every_row_and_refuses_a_non_empty_target(
    backend: Backend, tmp_path: Path
) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    asyncio.run(seed(source))
    expected = asyncio.run(dump(source, None))
    assert all(expected[t.name] for t in metadata.sorted_tables)  # every table has rows

    result = copy(source, backend)
    assert result.exit_code == 0, result.output
    assert "row counts verified" in result.output
    assert asyncio.run(dump(backend.url, backend.schema)) == expected

    again = copy(source, backend)
    assert again.exit_code == 1
    assert "target is not empty" in again.output and "--replace" in again.output

    replaced = copy(source, backend, "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert asyncio.run(dump(backend.url, backend.schema)) == expected

    async def keeps_working() -> None:
        # New rows after the copy get fresh ids (the event id sequence moved past the copy).
        store = await open_store(backend.url, schema=backend.schema)
        d = Dispatcher(store, ManualClock(), worker_ttl_seconds=60)
        created = await d.create_session(NewSession(prompt="after the move"))
        (event,) = await d.history(created.id)
        assert event.id is not None
        assert event.id > max(e["id"] for e in expected["session_events"])
        await store.close()

    asyncio.run(keeps_working())


def test_copy_refuses_a_missing_source_and_the_same_database(tmp_path: Path) -> None:
    missing = runner.invoke(
        app, ["db", "copy", "--from", f"sqlite:///{tmp_path / 'nope.db'}", "--to", "sqlite:///x"]
    )
    assert missing.exit_code == 1 and "no SQLite database" in missing.output
    assert not (tmp_path / "nope.db").exists()
    source = f"sqlite:///{tmp_path / 'source.db'}"
    asyncio.run(seed(source))
    same = runner.invoke(app, ["db", "copy", "--from", source, "--to", source])
    assert same.exit_code == 1 and "same database" in same.output
