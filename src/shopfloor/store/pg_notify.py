"""A broadcast channel between server processes on one PostgreSQL database: LISTEN/NOTIFY on
one dedicated connection per process, re-established if it drops.

Notifications are per database, so the channel name carries the schema: servers that keep their
tables in different schemas of one database never wake each other."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

log = logging.getLogger("shopfloor.notify")

_MAX_CHANNEL_BYTES = 63  # NAMEDATALEN - 1: LISTEN truncates longer names, pg_notify refuses them


def channel_name(schema: str | None) -> str:
    name = f"shopfloor:{schema}" if schema else "shopfloor"
    if len(name.encode()) > _MAX_CHANNEL_BYTES:
        name = "shopfloor:" + hashlib.sha256(name.encode()).hexdigest()[:32]
    return name


def asyncpg_dsn(url: str) -> str:
    """A plain `postgresql://` DSN for asyncpg from any SQLAlchemy-style Postgres URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


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
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    async def send(self, payload: str) -> None:
        conn = self._conn
        if conn is None or conn.is_closed():
            raise ConnectionError(f"not connected to PostgreSQL for channel {self.channel!r}")
        async with self._use:
            # Bounded: an enqueue must never hang on a connection that died silently.
            await asyncio.wait_for(
                conn.execute("SELECT pg_notify($1, $2)", self.channel, payload), 5
            )

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
                await asyncio.wait_for(self._lost.wait(), self.ping_seconds)
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
                await asyncio.wait_for(conn.fetchval("SELECT 1"), 5)
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
