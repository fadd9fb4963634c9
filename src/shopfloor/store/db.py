"""The two database handles the SQL store runs on, behind one small async interface.

PostgreSQL goes through SQLAlchemy's asyncio engine (asyncpg): statements are network round
trips, so the event loop serves other requests while one waits.

SQLite is a library call of a few microseconds, not a round trip. Sending each statement to a
helper thread (aiosqlite) costs far more than the statement itself: a thread hand-off, a loop
wake-up and a greenlet switch per call, several calls per statement. So the SQLite handle runs
statements on the calling thread, the event loop, over one long-lived connection. A transaction
holds an asyncio lock from BEGIN to COMMIT, so transactions of concurrent requests never
interleave on that connection; since no statement yields to the loop, the lock is almost never
contended. The cost of this choice: while another process (`shopfloor db upgrade`, or any
other writer of the same file) holds SQLite's write lock, the server waits for it
(busy_timeout) without serving anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, Dialect, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable

T = TypeVar("T")
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class DbConnection(Protocol):
    """What the store's queries use of a connection."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(
        self, statement: Executable, parameters: Params = None
    ) -> CursorResult[Any]: ...

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any: ...

    def begin_nested(self) -> contextlib.AbstractAsyncContextManager[object]: ...

    def batches(self, statement: Executable, size: int) -> AsyncIterator[list[RowMapping]]:
        """The rows of a large result, `size` at a time, without loading them all."""
        ...

    async def run_sync(self, fn: Callable[[Connection], T]) -> T: ...


class Database(Protocol):
    """A transaction (`begin`) or a read-only connection (`connect`), then `dispose`."""

    @property
    def dialect(self) -> Dialect: ...

    def begin(self) -> contextlib.AbstractAsyncContextManager[DbConnection]: ...

    def connect(self) -> contextlib.AbstractAsyncContextManager[DbConnection]: ...

    def autocommit(self) -> contextlib.AbstractAsyncContextManager[DbConnection]:
        """A connection whose every statement commits by itself (no BEGIN/COMMIT round
        trips), for a write that is one statement."""
        ...

    async def dispose(self) -> None: ...


# -- PostgreSQL: SQLAlchemy's asyncio engine --


class _AsyncConn:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    async def execute(self, statement: Executable, parameters: Params = None) -> CursorResult[Any]:
        return await self._conn.execute(statement, parameters)

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        return await self._conn.scalar(statement, parameters)

    @contextlib.asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[object]:
        async with self._conn.begin_nested() as savepoint:
            yield savepoint

    async def batches(self, statement: Executable, size: int) -> AsyncIterator[list[RowMapping]]:
        result = await self._conn.stream(statement)
        async for batch in result.mappings().partitions(size):
            yield list(batch)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        return await self._conn.run_sync(fn)


class AsyncEngineDatabase:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> Dialect:
        return self.engine.dialect

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[DbConnection]:
        async with self.engine.begin() as conn:
            yield _AsyncConn(conn)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[DbConnection]:
        async with self.engine.connect() as conn:
            yield _AsyncConn(conn)

    @contextlib.asynccontextmanager
    async def autocommit(self) -> AsyncIterator[DbConnection]:
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield _AsyncConn(conn)

    async def dispose(self) -> None:
        await self.engine.dispose()


# -- SQLite: statements on the loop, one connection --


class _LoopConn:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    async def execute(self, statement: Executable, parameters: Params = None) -> CursorResult[Any]:
        return self._conn.execute(statement, parameters)

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        return self._conn.scalar(statement, parameters)

    @contextlib.asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[object]:
        with self._conn.begin_nested() as savepoint:
            yield savepoint

    async def batches(self, statement: Executable, size: int) -> AsyncIterator[list[RowMapping]]:
        result = self._conn.execution_options(yield_per=size).execute(statement)
        for batch in result.mappings().partitions(size):
            yield list(batch)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        return fn(self._conn)


class LoopSqliteDatabase:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def dialect(self) -> Dialect:
        return self.engine.dialect

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[DbConnection]:
        async with self._lock:
            conn = self._connection()
            with conn.begin():
                yield _LoopConn(conn)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[DbConnection]:
        async with self._lock:
            conn = self._connection()
            try:
                yield _LoopConn(conn)
            finally:
                # Like closing a pooled connection: whatever was not committed is not kept.
                if conn.in_transaction():
                    conn.rollback()

    def autocommit(self) -> contextlib.AbstractAsyncContextManager[DbConnection]:
        return self.begin()  # a transaction costs no round trip here

    async def dispose(self) -> None:
        async with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self.engine.dispose()
