"""A worker's poll is written to the database at most every POLL_RECORD_EVERY_MS per queue,
and the queue's stats still count it as polling over the whole window."""

from __future__ import annotations

import sqlalchemy as sa

from shopfloor.clock import ManualClock
from shopfloor.service.dispatch import Dispatcher
from shopfloor.service.environments import Environments, NewEnvironment
from shopfloor.service.work import POLL_RECORD_EVERY_MS, POLLING_WINDOW_MS, WorkQueue
from shopfloor.store import Store
from shopfloor.store.schema import queue_pollers
from shopfloor.store.sql import SqlStore


async def _recorded_at(store: Store, env: str, worker: str) -> int | None:
    assert isinstance(store, SqlStore)
    query = sa.select(queue_pollers.c.polled_at).where(
        queue_pollers.c.queue == env, queue_pollers.c.worker_id == worker
    )
    async with store.db.connect() as conn:
        return await conn.scalar(query)  # type: ignore[no-any-return]


async def test_polls_are_recorded_at_most_every_interval(store: Store, clock: ManualClock) -> None:
    work = WorkQueue(Dispatcher(store, clock, worker_ttl_seconds=300))
    env = (await Environments(store, clock).create(NewEnvironment(name="p"))).id
    first = clock.now_ms()
    await work.poll(env, "w1", None, 5000)
    assert await _recorded_at(store, env, "w1") == first

    clock.advance((POLL_RECORD_EVERY_MS - 1) / 1000)
    await work.poll(env, "w1", None, 5000)
    assert await _recorded_at(store, env, "w1") == first  # not written again yet
    await work.poll(env, "w2", None, 5000)  # another worker is its own record
    assert await _recorded_at(store, env, "w2") == clock.now_ms()

    clock.advance(1 / 1000)
    await work.poll(env, "w1", None, 5000)
    assert await _recorded_at(store, env, "w1") == clock.now_ms()

    clock.advance((POLLING_WINDOW_MS - POLL_RECORD_EVERY_MS) / 1000)
    assert (await work.stats(env)).workers_polling == 2
