"""The two database handles the SQL store runs on, behind one small async interface.

PostgreSQL goes through SQLAlchemy's asyncio engine (asyncpg): statements are network round
trips, so the event loop serves other requests while one waits.

SQLite is a library call of a few microseconds, not a round trip. Sending each statement to a
helper thread (aiosqlite) costs far more than the statement itself: a thread hand-off, a loop
wake-up and a greenlet switch per call, several calls per statement. So the SQLite handle runs
statements on the calling thread, the event loop, over one long-lived connection. A transaction
holds an asyncio lock while it runs, so transactions of concurrent requests never interleave
on that connection; since no statement yields to the loop, the lock is almost never
contended. The transactions of one turn of the loop share a COMMIT (LoopSqliteDatabase).
The cost of this choice: while another process (`shopfloor db upgrade`, or any other writer
of the same file) holds SQLite's write lock, the server waits for it (busy_timeout) without
serving anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, Dialect, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable

from shopfloor.store.observers import DB_COMMIT, DB_READ, DB_WRITE, StoreObservers

T = TypeVar("T")
log = logging.getLogger("shopfloor.store")
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
Processor = Callable[[Any], Any] | None
Statement = sa.Select[Any] | sa.Insert | sa.Update | sa.Delete


class Prepared:
    """A hot-path statement, built once at import, compiled once per dialect to SQL text, and
    run straight on the driver (pysqlite's cursor, asyncpg's connection) inside the
    transaction SQLAlchemy opened, with the column types' own conversions (JSON) applied by
    hand. SQLAlchemy's per-execution work (execution context, parameter processing, result
    metadata, and on asyncio a greenlet hand-off) costs several times what the database
    takes to run a small statement: fetching a session by id took 21 us through SQLAlchemy
    and 6.5 us prepared on SQLite; 110 us and 33 us of CPU on Postgres.

    Driver errors reach the caller as the driver raised them (sqlite3/asyncpg exceptions),
    not wrapped in SQLAlchemy's; the hot statements have no constraint a caller handles."""

    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self._compiled: dict[str, _DriverQuery | None] = {}

    def for_driver(self, dialect: Dialect) -> _DriverQuery | None:
        """The compiled form, or None for a statement whose SQL varies per execution
        (an expanding IN list), which keeps SQLAlchemy's path."""
        try:
            return self._compiled[dialect.name]
        except KeyError:
            query = self._compiled[dialect.name] = _DriverQuery.compile(self.statement, dialect)
            return query


class _DriverQuery:
    def __init__(
        self,
        sql: str,
        binds: list[tuple[str, bool, Any, Processor]],
        columns: list[tuple[str, sa.types.TypeEngine[Any]]],
        dialect: Dialect,
    ) -> None:
        self.sql = sql
        self.binds = binds  # (name, required, default value, processor), in SQL order
        self._columns = columns  # (key, type), in result order
        self._dialect = dialect
        self._processors: list[tuple[str, Processor]] | None = None

    @classmethod
    def compile(cls, statement: Statement, dialect: Dialect) -> _DriverQuery | None:
        compiled = statement.compile(dialect=dialect)
        if "POSTCOMPILE" in compiled.string or compiled.positiontup is None:
            return None
        binds: list[tuple[str, bool, Any, Processor]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            binds.append((name, bind.required, bind.value, processor))
        exported = getattr(statement, "exported_columns", ())
        columns = [(col.key, col.type.dialect_impl(dialect)) for col in exported]
        return cls(compiled.string, binds, columns, dialect)

    @property
    def resolved(self) -> bool:
        return self._processors is not None

    def resolve(self, type_codes: Sequence[Any] | None) -> None:
        """Pick each column's conversion, given the type codes the driver reports for the
        result (as SQLAlchemy does; SQLite reports none)."""
        codes = type_codes or [None] * len(self._columns)
        self._processors = [
            (key, impl.result_processor(self._dialect, code))
            for (key, impl), code in zip(self._columns, codes, strict=True)
        ]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, required, default, processor in self.binds:
            value = params[name] if required else params.get(name, default)
            out.append(value if processor is None else processor(value))
        return out

    def rows(self, fetched: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        if self._processors is None:
            self.resolve(None)
        columns = self._processors
        assert columns is not None
        return [
            {key: v if p is None else p(v) for (key, p), v in zip(columns, row, strict=True)}
            for row in fetched
        ]


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

    async def fetch(self, query: Prepared, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The rows of a prepared query, as dicts keyed by column."""
        ...

    async def run(self, query: Prepared, parameters: Params) -> int:
        """Execute a prepared write (a list of parameter sets runs it once per set); returns
        the number of rows it touched, or -1 where the driver does not say (asyncpg, for a
        list of parameter sets)."""
        ...

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


def _took(observers: StoreObservers, kind: str, started: float) -> None:
    observe = observers.db_time
    if observe is not None:
        observe(kind, time.perf_counter() - started)


# -- PostgreSQL: SQLAlchemy's asyncio engine, transactions owned through asyncpg --


class _AsyncConn:
    """One pooled connection. SQLAlchemy runs it in its DBAPI autocommit mode (the engine's
    isolation_level="AUTOCOMMIT"), so its asyncpg adapter never begins or ends a transaction
    by itself; the transaction of `Database.begin` is opened and ended here, on the asyncpg
    connection that SQLAlchemy documents as the pooled connection's `driver_connection`,
    through asyncpg's own public `Connection.transaction()`. Statements of both paths (SQLAlchemy's
    and the prepared ones sent straight to asyncpg) run on that one connection, so they share
    the transaction. It begins lazily, at the first statement, as SQLAlchemy's adapter would:
    a transaction that runs nothing costs no round trip. A read-only connection
    (`Database.connect`, `Database.autocommit`) runs each statement by itself: under READ
    COMMITTED a BEGIN would give its reads nothing but two round trips."""

    def __init__(self, conn: AsyncConnection, *, transaction: bool) -> None:
        self._conn = conn
        self._transaction = transaction  # False: each statement commits by itself
        self._driver_conn: Any = None  # the asyncpg connection
        self._tx: Any = None  # its asyncpg Transaction, once begun

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    async def execute(self, statement: Executable, parameters: Params = None) -> CursorResult[Any]:
        await self._driver()
        return await self._conn.execute(statement, parameters)

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        await self._driver()
        return await self._conn.scalar(statement, parameters)

    async def fetch(self, query: Prepared, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        compiled = query.for_driver(self._conn.dialect)
        driver = await self._driver()
        if compiled is None:
            result = await self._conn.execute(query.statement, parameters)
            return [dict(row) for row in result.mappings()]
        if not compiled.resolved:
            prepared = await driver.prepare(compiled.sql)
            compiled.resolve([attribute.type.oid for attribute in prepared.get_attributes()])
        return compiled.rows(await driver.fetch(compiled.sql, *compiled.arguments(parameters)))

    async def run(self, query: Prepared, parameters: Params) -> int:
        compiled = query.for_driver(self._conn.dialect)
        driver = await self._driver()
        if compiled is None:
            return int((await self._conn.execute(query.statement, parameters)).rowcount)
        if isinstance(parameters, Sequence):
            await driver.executemany(compiled.sql, [compiled.arguments(p) for p in parameters])
            return -1  # asyncpg does not report it
        status = await driver.execute(compiled.sql, *compiled.arguments(parameters or {}))
        return int(status.rsplit(" ", 1)[-1])

    async def _driver(self) -> Any:
        """The asyncpg connection, inside this connection's transaction if it has one."""
        if self._driver_conn is None:
            self._driver_conn = (await self._conn.get_raw_connection()).driver_connection
        if self._transaction and self._tx is None:
            tx = self._driver_conn.transaction()
            await tx.start()
            self._tx = tx
        return self._driver_conn

    async def finish(self, commit: bool) -> None:
        """COMMIT (or ROLLBACK) the transaction, if one began. A connection whose
        transaction could not be ended cleanly is discarded, not returned to the pool: in
        autocommit mode SQLAlchemy's reset-on-return has nothing of ours to roll back."""
        tx, self._tx = self._tx, None
        if tx is None:
            return
        try:
            await (tx.commit() if commit else tx.rollback())
        finally:
            if self._driver_conn.is_closed() or self._driver_conn.is_in_transaction():
                await self._conn.invalidate()

    @contextlib.asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[object]:
        # asyncpg's transaction() inside ours is a SAVEPOINT, rolled back on an exception.
        driver = await self._driver()
        async with driver.transaction() as savepoint:
            yield savepoint

    async def batches(self, statement: Executable, size: int) -> AsyncIterator[list[RowMapping]]:
        driver = await self._driver()
        # A server-side cursor lives in a transaction; a read-only connection opens one for it.
        async with contextlib.nullcontext() if self._tx else driver.transaction():
            result = await self._conn.stream(statement)
            async for batch in result.mappings().partitions(size):
                yield list(batch)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        await self._driver()
        return await self._conn.run_sync(fn)


class AsyncEngineDatabase:
    """Over an engine made by `async_engine` (DBAPI autocommit: see _AsyncConn). Each
    transaction and each read connection is timed whole (waiting for a pooled connection,
    the round trips, the COMMIT) for `observers.db_time`: two clock reads."""

    def __init__(self, engine: AsyncEngine, observers: StoreObservers | None = None) -> None:
        self.engine = engine
        self.observers = observers or StoreObservers()

    @property
    def dialect(self) -> Dialect:
        return self.engine.dialect

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[DbConnection]:
        started = time.perf_counter()
        try:
            async with self.engine.connect() as conn:
                wrapped = _AsyncConn(conn, transaction=True)
                try:
                    yield wrapped
                except BaseException:
                    with contextlib.suppress(Exception):
                        await wrapped.finish(commit=False)
                    raise
                await wrapped.finish(commit=True)
        finally:
            _took(self.observers, DB_WRITE, started)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[DbConnection]:
        started = time.perf_counter()
        try:
            async with self.engine.connect() as conn:
                yield _AsyncConn(conn, transaction=False)
        finally:
            _took(self.observers, DB_READ, started)

    @contextlib.asynccontextmanager
    async def autocommit(self) -> AsyncIterator[DbConnection]:
        # every statement of a connection without a transaction commits by itself
        started = time.perf_counter()
        try:
            async with self.engine.connect() as conn:
                yield _AsyncConn(conn, transaction=False)
        finally:
            _took(self.observers, DB_WRITE, started)

    async def dispose(self) -> None:
        await self.engine.dispose()


def async_engine(url: str, **options: Any) -> AsyncEngine:
    """The engine of an AsyncEngineDatabase: SQLAlchemy's documented DBAPI autocommit mode,
    so that transactions are ours to open and end (see _AsyncConn)."""
    return create_async_engine(url, isolation_level="AUTOCOMMIT", **options)


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

    async def fetch(self, query: Prepared, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        compiled = query.for_driver(self._conn.dialect)
        if compiled is None:
            result = self._conn.execute(query.statement, parameters)
            return [dict(row) for row in result.mappings()]
        cursor = self._cursor()
        try:
            return compiled.rows(
                cursor.execute(compiled.sql, compiled.arguments(parameters)).fetchall()
            )
        finally:
            cursor.close()

    async def run(self, query: Prepared, parameters: Params) -> int:
        compiled = query.for_driver(self._conn.dialect)
        if compiled is None:
            return int(self._conn.execute(query.statement, parameters).rowcount)
        cursor = self._cursor()
        try:
            if isinstance(parameters, Sequence):
                cursor.executemany(compiled.sql, [compiled.arguments(p) for p in parameters])
            else:
                cursor.execute(compiled.sql, compiled.arguments(parameters or {}))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def _cursor(self) -> Any:
        # The driver connection under SQLAlchemy's: same transaction, no per-call wrapping.
        return self._conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

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


@dataclass
class _Group:
    """The transactions that share one COMMIT."""

    transaction: sa.RootTransaction  # SQLAlchemy's view of it (Alembic asks whether one is open)
    committed: asyncio.Future[None]


class LoopSqliteDatabase:
    """Group commit. A COMMIT in WAL mode appends every page the transaction changed to the
    WAL; the transactions of one drain touch the same few pages (the queue's index, the
    history table's last page), so committing each alone rewrote them over and over. Here
    the transactions that run in one turn of the event loop share a COMMIT: the first one
    opens the group's transaction (BEGIN) and schedules its COMMIT with `call_soon`, which
    runs it after the transactions already scheduled in this turn. Each transaction runs
    inside a SAVEPOINT of its own, so a failing one is rolled back alone; each waits for the
    group's COMMIT before it returns, so none reports success for a write that is not
    durable, and if the COMMIT fails they all raise. A read (`connect`) that ran inside an
    open group waits for its COMMIT too: it may have seen the group's writes. The write lock
    is held until that COMMIT, a turn of the loop later: another process wanting to write
    waits that long, but a second connection of this process would block the very loop that
    is to commit (until busy_timeout), so the file has one writing connection per process.

    Checkpoints move the WAL's pages into the database file and fsync it: the one thing
    SQLite does here that waits on the disk (about 3 ms for 500 small commits' pages on this
    machine's disk; more on a slower one), and the loop would stall for it. So the loop's
    connection never checkpoints (`wal_autocheckpoint=0`); every CHECKPOINT_EVERY commits a
    helper thread runs a PASSIVE checkpoint on a connection of its own, which blocks neither
    readers nor the writer."""

    CHECKPOINT_EVERY = 500  # commits, of a few WAL pages each (SQLite's own default: 1,000 pages)

    def __init__(self, engine: sa.Engine, observers: StoreObservers | None = None) -> None:
        self.engine = engine
        self.observers = observers or StoreObservers()
        self.commits = 0  # COMMITs run, for the tests and the checkpoint schedule
        self._conn: Connection | None = None
        self._driver: Any = None  # the sqlite3 connection under self._conn
        self._lock = asyncio.Lock()
        self._group: _Group | None = None
        self._commit_task: asyncio.Task[None] | None = None  # see _commit_when_idle
        self._since_checkpoint = 0
        self._checkpoint: asyncio.Task[None] | None = None

    @property
    def dialect(self) -> Dialect:
        return self.engine.dialect

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.engine.connect()
            self._driver = self._conn.connection.dbapi_connection
            self._driver.execute("PRAGMA wal_autocheckpoint=0")
        return self._conn

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[DbConnection]:
        # BEGIN, SAVEPOINT, RELEASE and COMMIT go straight to the driver (the engine's driver
        # connection begins nothing by itself, see sqlite_engine): through SQLAlchemy they
        # cost more than the statements of a small transaction.
        async with self._lock:
            # Timed from the lock to RELEASE: the statements, not the wait for the group's
            # COMMIT (a turn of the loop that serves others; the COMMIT is timed itself).
            started = time.perf_counter()
            conn = self._connection()
            group = self._join_group(conn)
            self._driver.execute("SAVEPOINT tx")
            try:
                yield _LoopConn(conn)
            except BaseException:
                self._driver.execute("ROLLBACK TO tx")
                self._driver.execute("RELEASE tx")
                raise
            finally:
                _took(self.observers, DB_WRITE, started)
            self._driver.execute("RELEASE tx")
        # Shielded: a caller cancelled here must not cancel the commit the others wait for.
        await asyncio.shield(group.committed)

    def _join_group(self, conn: Connection) -> _Group:
        if self._group is None:
            transaction = conn.begin()
            self._driver.execute("BEGIN")
            loop = asyncio.get_running_loop()
            self._group = _Group(transaction, loop.create_future())
            loop.call_soon(self._commit_when_idle, self._group)
        return self._group

    def _commit_when_idle(self, group: _Group) -> None:
        """After this turn's transactions: commit now, unless one of them is still running
        (one that awaits something other than this database); then once it is done."""
        if self._lock.locked():
            self._commit_task = asyncio.ensure_future(self._commit_after_lock(group))
        else:
            self._commit(group)

    async def _commit_after_lock(self, group: _Group) -> None:
        async with self._lock:
            self._commit(group)

    def _commit(self, group: _Group) -> None:
        self._group = None
        started = time.perf_counter()
        try:
            if not self._driver.in_transaction:
                # SQLite rolled the whole transaction back under us (it does on some errors,
                # an I/O error or a full disk); pysqlite's commit would then succeed silently.
                raise sqlite3.OperationalError("the transaction was rolled back before COMMIT")
            group.transaction.commit()
        except Exception as exc:
            # SQLite may keep a transaction whose COMMIT failed (a deferred foreign key);
            # SQLAlchemy may count it as ended already. End it for both.
            with contextlib.suppress(Exception):
                group.transaction.rollback()
            if self._driver.in_transaction:
                self._driver.rollback()
            group.committed.set_exception(exc)
        else:
            group.committed.set_result(None)
        _took(self.observers, DB_COMMIT, started)
        self.commits += 1
        self._since_checkpoint += 1
        if self._since_checkpoint >= self.CHECKPOINT_EVERY and (
            self._checkpoint is None or self._checkpoint.done()
        ):
            self._since_checkpoint = 0
            self._checkpoint = asyncio.create_task(asyncio.to_thread(self._checkpoint_wal))

    def _checkpoint_wal(self) -> None:
        path = self.engine.url.database
        if not path or path == ":memory:":
            return
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next one catches up; nothing is lost meanwhile
            log.warning("WAL checkpoint of %s failed: %s", path, exc)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[DbConnection]:
        async with self._lock:
            started = time.perf_counter()
            conn = self._connection()
            group = self._group
            try:
                yield _LoopConn(conn)
            finally:
                # Like closing a pooled connection: whatever was not committed is not kept
                # (outside a group, whose transaction is not this reader's to end).
                if group is None and conn.in_transaction():
                    conn.rollback()
                _took(self.observers, DB_READ, started)
        if group is not None:
            await asyncio.shield(group.committed)

    def autocommit(self) -> contextlib.AbstractAsyncContextManager[DbConnection]:
        return self.begin()  # a transaction costs no round trip here

    async def dispose(self) -> None:
        if self._group is not None:
            await asyncio.shield(self._group.committed)
        if self._checkpoint is not None:
            await self._checkpoint
        async with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self.engine.dispose()
