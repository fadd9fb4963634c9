"""Wake-ups across server processes: LISTEN/NOTIFY through PgNotifyChannel.

Each notifier below has its own dedicated connection, exactly as two server processes would.
The one timed bound here is the documented long-poll wake-up bound: a notify reaches a waiter
on another connection within WAKE_BOUND seconds (milliseconds in practice; generous for CI)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg

from shopfloor.service.live_feed import LiveFeeds
from shopfloor.service.notifier import BroadcastNotifier
from shopfloor.store.pg_notify import PgNotifyChannel, channel_name
from tests.conftest import PG_URL, Backend

WAKE_BOUND = 1.0


@asynccontextmanager
async def notifier(schema: str | None, **kw: float) -> AsyncIterator[BroadcastNotifier]:
    n = BroadcastNotifier(PgNotifyChannel(PG_URL, schema=schema, **kw))
    await n.start()
    try:
        yield n
    finally:
        await n.close()


async def waiting(n: BroadcastNotifier, queue: str, seconds: float) -> asyncio.Task[bool]:
    """Start a wait and return once it is registered, so no wake-up can slip past it."""
    before = n.waiting(queue)
    task = asyncio.create_task(n.wait(queue, seconds))
    await asyncio.sleep(0)  # the task registers its waiter before its first suspension
    assert n.waiting(queue) == before + 1
    return task


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def terminate_backend(pid: int | None) -> None:
    assert pid is not None
    conn = await asyncpg.connect(PG_URL)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_notify_wakes_a_waiter_on_another_connection(postgres: Backend) -> None:
    async with notifier(postgres.schema) as a, notifier(postgres.schema) as b:
        woken = await waiting(b, "agentfactory", 10)
        other = await waiting(b, "elsewhere", 10)
        started = time.monotonic()
        await a.notify("agentfactory")
        assert await woken is True
        assert time.monotonic() - started < WAKE_BOUND
        assert not other.done()  # only the notified queue wakes
        await a.notify("elsewhere")
        assert await other is True


async def test_publish_wakes_every_waiter_on_another_connection(postgres: Backend) -> None:
    """A managed session's event, written on one process, reaches every stream watching the
    session on every other (and its own), while a notify of the same name wakes one."""
    async with notifier(postgres.schema) as a, notifier(postgres.schema) as b:
        watchers = [await waiting(b, "managed:s1", 10) for _ in range(3)]
        own = await waiting(a, "managed:s1", 10)
        started = time.monotonic()
        await a.publish("managed:s1")
        assert await asyncio.gather(*watchers, own) == [True] * 4
        assert time.monotonic() - started < WAKE_BOUND
        polls = [await waiting(b, "q", 10) for _ in range(2)]
        await a.notify("q")
        await until(lambda: any(p.done() for p in polls))
        await asyncio.sleep(0.2)
        assert sum(p.done() for p in polls) == 1
        await a.notify("q")
        await asyncio.gather(*polls)


async def test_sender_wakes_its_own_waiters(postgres: Backend) -> None:
    async with notifier(postgres.schema) as a:
        woken = await waiting(a, "q", 10)
        await a.notify("q")
        assert await woken is True


async def test_wait_times_out_without_a_notify(postgres: Backend) -> None:
    async with notifier(postgres.schema) as a:
        assert await a.wait("q", 0.05) is False


async def test_servers_on_other_schemas_are_not_woken(postgres: Backend) -> None:
    assert channel_name("one") != channel_name("two")
    assert len(channel_name("x" * 63).encode()) <= 63
    async with notifier(postgres.schema) as a, notifier(f"{postgres.schema}_other") as b:
        woken = await waiting(b, "q", 0.3)
        await a.notify("q")
        assert await woken is False


async def test_listener_reconnects_after_its_connection_is_killed(postgres: Backend) -> None:
    async with (
        notifier(postgres.schema) as a,
        notifier(postgres.schema, retry_seconds=0.05) as b,
    ):
        assert isinstance(b.channel, PgNotifyChannel)
        old_pid = b.channel.server_pid
        # A waiter present while the connection is down is woken once it is back, since a
        # notify sent in the gap was lost: it looks at the queue again instead of sleeping on.
        during_outage = await waiting(b, "q", 30)
        await terminate_backend(old_pid)
        assert await during_outage is True
        channel = b.channel
        await until(lambda: channel.server_pid not in (None, old_pid))
        woken = await waiting(b, "q", 10)
        await a.notify("q")
        assert await woken is True


async def test_notify_survives_a_dead_sender_connection(postgres: Backend) -> None:
    async with notifier(postgres.schema, ping_seconds=3600, retry_seconds=3600) as a:
        assert isinstance(a.channel, PgNotifyChannel)
        local = await waiting(a, "q", 10)
        await terminate_backend(a.channel.server_pid)
        # Whether the channel has noticed the loss yet, is reconnecting or is back, the
        # enqueue that calls notify must not fail, and this process's waiters still wake.
        await a.notify("q")
        assert await local is True


async def test_concurrent_publishes_share_broadcasts_and_each_reaches_its_watchers(
    postgres: Backend,
) -> None:
    """Appends to many runs at once publish many topics: the ones published while a broadcast
    is under way go out together in the next, and none is lost."""
    async with notifier(postgres.schema) as a, notifier(postgres.schema) as b:
        topics = [f"run:{i}" for i in range(50)]
        watchers = [await waiting(b, topic, 10) for topic in topics]
        broadcasts: list[int] = []
        send_all = a.channel.send_all

        async def counted(payloads: list[str]) -> None:
            broadcasts.append(len(payloads))
            await send_all(payloads)

        a.channel.send_all = counted  # type: ignore[method-assign]
        await asyncio.gather(*(a.publish(topic) for topic in topics))
        assert await asyncio.gather(*watchers) == [True] * 50
        assert sum(broadcasts) == 50 and len(broadcasts) <= 2


async def test_a_live_reader_in_one_process_makes_writers_elsewhere_publish(
    postgres: Backend,
) -> None:
    """A process with a live reader announces it; another process's writers then send their
    wake-ups for that key (and a key nobody watches gets none)."""
    async with notifier(postgres.schema) as a, notifier(postgres.schema) as b:
        watching, writing = LiveFeeds(a), LiveFeeds(b)
        assert not writing.watched("run:1")

        async def look(after: int, limit: int) -> tuple[list[tuple[int, str]], None]:
            return [], None

        async def read(after: int, limit: int) -> list[tuple[int, str]]:
            return []

        followed = watching.follow("run:1", 0, look, read, quiet_seconds=60, lifetime_seconds=60)
        first = asyncio.create_task(anext(followed))
        try:
            await until(lambda: writing.watched("run:1"))
            assert not writing.watched("run:2")
            woken = await waiting(a, "run:1", 10)
            await writing.publish("run:1")
            assert await woken  # the reader's process got the writer's wake-up
        finally:
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
            await followed.aclose()
