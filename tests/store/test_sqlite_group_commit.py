"""SQLite group commit: the transactions of one turn of the event loop share a COMMIT, each
in a SAVEPOINT of its own; none returns before that COMMIT, and a failed COMMIT fails them
all. Real database files; a second, independent sqlite3 connection says what is committed."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from shopfloor.store.db import LoopSqliteDatabase
from shopfloor.store.sql import sqlite_engine


def committed(path: Path, table: str = "t") -> list[Any]:
    """The rows of `table` that another connection sees: what is committed."""
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute(f"SELECT x FROM {table} ORDER BY x")]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[LoopSqliteDatabase]:
    engine = sqlite_engine(f"sqlite:///{tmp_path / 'g.db'}")
    event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA foreign_keys=ON"))
    database = LoopSqliteDatabase(engine)
    async with database.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        await conn.execute(sa.text("CREATE TABLE parent (x INTEGER PRIMARY KEY)"))
        await conn.execute(
            sa.text(
                "CREATE TABLE child (x INTEGER REFERENCES parent (x) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield database
    await database.dispose()


async def insert(db: LoopSqliteDatabase, x: int, table: str = "t") -> None:
    async with db.begin() as conn:
        await conn.execute(sa.text(f"INSERT INTO {table} VALUES (:x)"), {"x": x})


def path_of(db: LoopSqliteDatabase) -> Path:
    return Path(str(db.engine.url.database))


async def test_the_transactions_of_one_loop_turn_share_one_commit(db: LoopSqliteDatabase) -> None:
    before = db.commits
    await asyncio.gather(*(insert(db, x) for x in range(20)))
    assert db.commits == before + 1
    assert committed(path_of(db)) == list(range(20))


async def test_a_failing_transaction_is_rolled_back_alone(db: LoopSqliteDatabase) -> None:
    async def half_then_fail() -> None:
        async with db.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (100)"))
            raise RuntimeError("the request failed midway")

    outcomes = await asyncio.gather(
        insert(db, 1), half_then_fail(), insert(db, 2), return_exceptions=True
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], RuntimeError)
    assert committed(path_of(db)) == [1, 2]


async def test_a_failed_commit_fails_every_transaction_of_its_group(
    db: LoopSqliteDatabase,
) -> None:
    # The child row's deferred foreign key is checked at COMMIT, which therefore fails: the
    # parent row's transaction, in the same group, must not report success either.
    outcomes = await asyncio.gather(
        insert(db, 7, "parent"), insert(db, 99, "child"), return_exceptions=True
    )
    assert all(isinstance(o, sa.exc.IntegrityError) for o in outcomes), outcomes
    assert committed(path_of(db), "parent") == []
    assert committed(path_of(db), "child") == []
    await insert(db, 8, "parent")  # the connection is usable again
    assert committed(path_of(db), "parent") == [8]


async def test_a_transaction_sqlite_rolled_back_fails_its_whole_group(
    db: LoopSqliteDatabase,
) -> None:
    # On some errors (I/O, a full disk) SQLite rolls back the whole transaction, not only
    # the failing statement: the group's earlier writes are gone, and must not be reported.
    async def rolled_back_by_sqlite() -> None:
        async with db.begin() as conn:
            await conn.execute(sa.text("ROLLBACK"))  # what SQLite does on such an error

    outcomes = await asyncio.gather(insert(db, 1), rolled_back_by_sqlite(), return_exceptions=True)
    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes), outcomes
    assert committed(path_of(db)) == []
    await insert(db, 2)
    assert committed(path_of(db)) == [2]


async def test_a_caller_cancelled_while_waiting_does_not_cancel_the_commit(
    db: LoopSqliteDatabase,
) -> None:
    release = asyncio.Event()

    async def slow() -> None:
        async with db.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (2)"))
            await release.wait()  # holds the connection: the group's COMMIT waits for it

    first = asyncio.create_task(insert(db, 1))
    second = asyncio.create_task(slow())
    await asyncio.sleep(0.05)
    assert not first.done()  # its body ran; it waits for the COMMIT
    first.cancel()
    release.set()
    await second
    with pytest.raises(asyncio.CancelledError):
        await first
    # The cancelled caller's write was already part of the group: it is committed, as a
    # write whose reply was lost would be.
    assert committed(path_of(db)) == [1, 2]


async def test_a_read_that_saw_a_groups_writes_returns_after_its_commit(
    db: LoopSqliteDatabase,
) -> None:
    async def read() -> int:
        async with db.connect() as conn:
            count = await conn.scalar(sa.text("SELECT count(*) FROM t"))
        assert committed(path_of(db)) == [5]  # what it saw is durable by now
        return int(count)

    _, seen = await asyncio.gather(insert(db, 5), read())
    assert seen == 1
