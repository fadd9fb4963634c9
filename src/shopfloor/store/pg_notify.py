"""A broadcast channel between server processes on one PostgreSQL database: LISTEN/NOTIFY on
one dedicated connection per process, re-established if it drops.

Notifications are per database, so the channel name carries the schema: servers that keep their
tables in different schemas of one database never wake each other."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

log = logging.getLogger("shopfloor.notify")

_NOTIFY_ALL = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload"
_MAX_CHANNEL_BYTES = 63  # NAMEDATALEN - 1: LISTEN truncates longer names, pg_notify refuses them


def channel_name(schema: str | None) -> str:
    name = f"shopfloor:{schema}" if schema else "shopfloor"
    if len(name.encode()) > _MAX_CHANNEL_BYTES:
        name = "shopfloor:" + hashlib.sha256(name.encode()).hexdigest()[:32]
    return name


def asyncpg_dsn(url: str) -> str:
    """A plain `postgresql://` DSN for asyncpg from any SQLAlchemy-style Postgres URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _bounded(conn: asyncpg.Connection, op: Awaitable[object], seconds: float = 5) -> None:
    """Run one operation on `conn` for at most `seconds`: an enqueue must never hang on a
    connection that died silently. On timeout the connection is aborted rather than the
    operation cancelled: cancelling an asyncpg query sends a cancel request and waits for
    the server's answer, which a dead connection never gives (asyncio.wait_for would then
    wait for ever)."""
    task = asyncio.ensure_future(op)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        task.result()
        return
    conn.terminate()  # fails the pending operation; its task ends on its own
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    raise TimeoutError(f"no answer from PostgreSQL in {seconds:g}s")


class PgNotifyChannel:
    """Sends a payload to, and receives payloads from, every process listening on the channel.
    Our own notifications are not delivered back to us (the sender wakes its own waiters)."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        retry_seconds: float = 0.5,
        ping_seconds: float = 10.0,
    ) -> None:
        self.dsn = asyncpg_dsn(url)
        self.channel = channel_name(schema)
        self.retry_seconds = retry_seconds
        self.ping_seconds = ping_seconds
        self._conn: asyncpg.Connection | None = None
        self._use = asyncio.Lock()  # an asyncpg connection runs one operation at a time
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_message: Callable[[str], None] = lambda _payload: None
        self._on_reconnect: Callable[[], None] = lambda: None

    @property
    def server_pid(self) -> int | None:
        """The backend pid of the listening connection (None while disconnected)."""
        conn = self._conn
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    async def start(
        self, on_message: Callable[[str], None], on_reconnect: Callable[[], None]
    ) -> None:
        """Connect and listen. A first connection failure is raised: the server should not
        start with a broken database URL."""
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        await self._connect()
        self._task = asyncio.create_task(self._keep_connected(), name="pg-notify-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # Bounded, like every wait here: closing must not hang on the upkeep task.
            await asyncio.wait({self._task}, timeout=5)
            self._task = None
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    async def send(self, payload: str) -> None:
        conn = self._connected()
        async with self._use:
            await _bounded(conn, conn.execute("SELECT pg_notify($1, $2)", self.channel, payload))

    async def send_all(self, payloads: Sequence[str]) -> None:
        """Several payloads in one round trip (one transaction, in which PostgreSQL delivers
        identical payloads once)."""
        conn = self._connected()
        async with self._use:
            await _bounded(conn, conn.execute(_NOTIFY_ALL, self.channel, list(payloads)))

    def _connected(self) -> asyncpg.Connection:
        conn = self._conn
        if conn is None or conn.is_closed() or self._lost.is_set():
            raise ConnectionError(f"not connected to PostgreSQL for channel {self.channel!r}")
        return conn

    # -- connection upkeep --

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            await conn.add_listener(self.channel, self._deliver)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._terminated)
        self._lost.clear()
        self._conn = conn

    def _deliver(self, conn: object, pid: int, _channel: str, payload: str) -> None:
        if pid == self.server_pid:
            return
        self._on_message(payload)

    def _terminated(self, conn: object) -> None:
        if conn is self._conn:
            self._lost.set()

    async def _keep_connected(self) -> None:
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 a wait_for whose inner wait
                # ends just as the task is cancelled can lose the cancellation (close() then
                # waited for ever; seen in this suite's notifier tests).
                async with asyncio.timeout(self.ping_seconds):
                    await self._lost.wait()
            except TimeoutError:
                if await self._alive():
                    continue
            await self._reconnect()

    async def _alive(self) -> bool:
        """A cheap round trip, so a silently dead connection (no FIN, no RST) is noticed."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            async with self._use:
                await _bounded(conn, conn.fetchval("SELECT 1"))
            return True
        except Exception:
            return False

    async def _reconnect(self) -> None:
        old, self._conn = self._conn, None
        if old is not None:
            old.terminate()
        log.warning("lost the LISTEN connection on %r; reconnecting", self.channel)
        while True:
            try:
                await self._connect()
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("LISTEN reconnect failed (%s); retrying", exc)
                await asyncio.sleep(self.retry_seconds)
                continue
            log.warning("LISTEN connection on %r re-established", self.channel)
            # Anything sent while we were away was missed: let every waiter look again.
            self._on_reconnect()
            return
