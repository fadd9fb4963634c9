"""SQLite: the server's own connection never checkpoints the WAL (a checkpoint fsyncs, and
it runs on the event loop); a helper thread does, every CHECKPOINT_EVERY commits."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from shopfloor.store.db import LoopSqliteDatabase
from shopfloor.store.sql import SqlStore


def _rows_in_main_file(path: Path) -> int:
    """Rows of `t` in the database file itself, ignoring the WAL (immutable=1)."""
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
        except sqlite3.OperationalError:  # the table itself is still only in the WAL
            return 0


@pytest.mark.parametrize("every", [3, 10_000])
async def test_checkpoints_run_off_the_loop_every_n_commits(tmp_path: Path, every: int) -> None:
    path = tmp_path / "c.db"
    store = SqlStore(f"sqlite:///{path}")
    db = store.db
    assert isinstance(db, LoopSqliteDatabase)
    db.CHECKPOINT_EVERY = every
    try:
        for statement in (
            "CREATE TABLE t (x)",
            "INSERT INTO t VALUES (1)",
            "INSERT INTO t VALUES (2)",
        ):
            async with db.begin() as conn:
                await conn.execute(sa.text(statement))
        if db._checkpoint is not None:
            await db._checkpoint
        assert _rows_in_main_file(path) == (2 if every == 3 else 0)
        async with db.connect() as conn:
            assert await conn.scalar(sa.text("PRAGMA wal_autocheckpoint")) == 0
    finally:
        await store.close()
