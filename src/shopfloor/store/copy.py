"""Copy one shopfloor database into another (typically a SQLite file into PostgreSQL).

Both ends are migrated to the newest schema first, so every table shopfloor defines is copied
row for row, ids included. The copy is one transaction on the target: it lands whole, with
row counts verified against the source, or not at all. Stop the servers writing to the
source first: rows written during the copy would be missed (and fail the verification)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shopfloor.store import open_store
from shopfloor.store.db import DbConnection
from shopfloor.store.schema import metadata, orgs
from shopfloor.store.sql import SqlStore
from shopfloor.store.tenancy_records import DEFAULT_ORG

BATCH_ROWS = 1000


class CopyError(Exception):
    """The copy was refused or did not verify; the target is unchanged."""


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows: int


async def copy_database(
    source_url: str,
    target_url: str,
    *,
    source_schema: str | None = None,
    target_schema: str | None = None,
    replace: bool = False,
) -> list[TableCopy]:
    """Copy every table from source to target. A target that already holds rows is refused
    unless `replace`, which empties it first (in the same transaction)."""
    _require_existing_sqlite(source_url)
    if _same_database(source_url, source_schema, target_url, target_schema):
        raise CopyError("source and target are the same database")
    source = await open_store(source_url, schema=source_schema)
    try:
        target = await open_store(target_url, schema=target_schema)
        try:
            assert isinstance(source, SqlStore) and isinstance(target, SqlStore)
            return await _copy(source, target, replace)
        finally:
            await target.close()
    finally:
        await source.close()


async def _copy(source: SqlStore, target: SqlStore, replace: bool) -> list[TableCopy]:
    tables = metadata.sorted_tables
    copied: list[TableCopy] = []
    async with target.db.begin() as dst, source.db.connect() as src:
        occupied = [t.name for t in tables if await _count(dst, t, seeded=True)]
        if occupied and not replace:
            raise CopyError(
                "target is not empty (rows in: " + ", ".join(occupied) + "); "
                "pass --replace to overwrite it"
            )
        for table in reversed(tables):
            await dst.execute(table.delete())
        for table in tables:
            order = list(table.primary_key.columns)
            rows = src.batches(sa.select(table).order_by(*order), BATCH_ROWS)
            async for batch in rows:
                await dst.execute(table.insert(), [dict(row) for row in batch])
        if target.dialect == "postgresql":
            await _reset_sequences(dst)
        else:
            await _reindex_memories(dst)
        for table in tables:
            expected, landed = await _count(src, table), await _count(dst, table)
            if expected != landed:
                raise CopyError(
                    f"{table.name}: {landed} rows copied but the source has {expected}; "
                    "is a server still writing to the source? Nothing was changed"
                )
            copied.append(TableCopy(table.name, landed))
    return copied


async def _count(conn: DbConnection, table: sa.Table, *, seeded: bool = False) -> int:
    """The table's rows; with `seeded`, leaving out the rows every migrated database has (the
    default organisation), which the copy replaces like the rest."""
    query = sa.select(sa.func.count()).select_from(table)
    if seeded and table is orgs:
        query = query.where(orgs.c.id != DEFAULT_ORG)
    return int(await conn.scalar(query) or 0)


async def _reset_sequences(conn: DbConnection) -> None:
    """Rows came in with their ids; move each serial column's sequence past them."""
    for table in metadata.sorted_tables:
        for column in table.primary_key.columns:
            if column.autoincrement is not True:
                continue
            await conn.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence(:table, :column), "
                    f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
                ),
                {"table": table.name, "column": column.name},
            )


async def _reindex_memories(conn: DbConnection) -> None:
    """SQLite's full-text index of memories is a table of its own (FTS5), not in the
    metadata: built again from the copied rows. (PostgreSQL's is a generated column.)"""
    await conn.execute(sa.text("DELETE FROM memories_fts"))
    await conn.execute(
        sa.text("INSERT INTO memories_fts (memory_id, content) SELECT id, content FROM memories")
    )


def _require_existing_sqlite(url: str) -> None:
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and not Path(parsed.database).is_file():
        raise CopyError(f"no SQLite database at {parsed.database}")


def _same_database(a: str, a_schema: str | None, b: str, b_schema: str | None) -> bool:
    ua, ub = make_url(a), make_url(b)
    if ua.get_backend_name() != ub.get_backend_name():
        return False
    if ua.get_backend_name() == "sqlite":
        return (
            bool(ua.database)
            and Path(ua.database or "").resolve() == Path(ub.database or "").resolve()
        )
    key: tuple[Any, ...] = (ua.host, ua.port, ua.database, a_schema)
    return key == (ub.host, ub.port, ub.database, b_schema)
