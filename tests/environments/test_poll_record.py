"""How an environment-API long poll spends the database and its time: a worker's poll is
written at most every POLL_RECORD_EVERY_MS per queue (the stats still count it over the whole
window), the polls noted are written together, one transaction per flush, and records of
silent workers are dropped at most every FORGET_EVERY_MS; an empty poll ends in the last fifth
of block_ms and does not look again."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa

from shopfloor.clock import ManualClock
from shopfloor.service import work as work_module
from shopfloor.service.dispatch import Dispatcher
from shopfloor.service.environments import Environments, NewEnvironment
from shopfloor.service.errors import EnvironmentNotFound
from shopfloor.service.notifier import LocalNotifier
from shopfloor.service.work import (
    FORGET_EVERY_MS,
    FORGET_POLLERS_AFTER_MS,
    POLL_RECORD_EVERY_MS,
    POLLING_WINDOW_MS,
    WorkQueue,
)
from shopfloor.store import Store
from shopfloor.store.schema import queue_pollers
from shopfloor.store.sql import SqlStore


async def _recorded_at(work: WorkQueue, env: str, worker: str) -> int | None:
    """When the worker's poll of the queue was last written down, once the noted polls are
    written (they are batched, see PollRecords)."""
    await work.polls.flush()
    store = work.store
    assert isinstance(store, SqlStore)
    query = sa.select(queue_pollers.c.polled_at).where(
        queue_pollers.c.queue == env, queue_pollers.c.worker_id == worker
    )
    async with store.db.connect() as conn:
        return await conn.scalar(query)  # type: ignore[no-any-return]


async def queue_with_environment(store: Store, clock: ManualClock) -> tuple[WorkQueue, str]:
    """A work queue over `store`, and the id of a new environment to poll."""
    work = WorkQueue(Dispatcher(store, clock, worker_ttl_seconds=300))
    env = (await Environments(store, clock).create(NewEnvironment(name="p"))).id
    return work, env


def calls_to(monkeypatch: pytest.MonkeyPatch, store: Store, method: str) -> list[tuple[Any, ...]]:
    """The arguments of every call to one of the store's methods from now on (which still runs)."""
    calls: list[tuple[Any, ...]] = []
    original = getattr(store, method)

    async def counted(*args: Any) -> Any:
        calls.append(args)
        return await original(*args)

    monkeypatch.setattr(store, method, counted)
    return calls


async def test_polls_are_recorded_at_most_every_interval(store: Store, clock: ManualClock) -> None:
    work, env = await queue_with_environment(store, clock)
    first = clock.now_ms()
    await work.poll(env, "w1", None, 5000)
    assert await _recorded_at(work, env, "w1") == first

    clock.advance((POLL_RECORD_EVERY_MS - 1) / 1000)
    await work.poll(env, "w1", None, 5000)
    assert await _recorded_at(work, env, "w1") == first  # not written again yet
    await work.poll(env, "w2", None, 5000)  # another worker is its own record
    assert await _recorded_at(work, env, "w2") == clock.now_ms()

    clock.advance(1 / 1000)
    await work.poll(env, "w1", None, 5000)
    assert await _recorded_at(work, env, "w1") == clock.now_ms()

    clock.advance((POLLING_WINDOW_MS - POLL_RECORD_EVERY_MS) / 1000)
    assert (await work.stats(env)).workers_polling == 2


async def test_silent_pollers_are_forgotten_at_most_once_per_interval(
    store: Store, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, env = await queue_with_environment(store, clock)
    forgets = calls_to(monkeypatch, store, "forget_pollers")
    await work.poll(env, "old", None, 5000)
    clock.advance(FORGET_POLLERS_AFTER_MS / 1000)
    await work.poll(env, "w1", None, 5000)
    assert await _recorded_at(work, env, "old") is not None  # silent for exactly the limit
    clock.advance(FORGET_EVERY_MS / 2000)
    await work.poll(env, "w2", None, 5000)  # too soon to look again
    assert len(forgets) == 2 and await _recorded_at(work, env, "old") is not None
    clock.advance(FORGET_EVERY_MS / 2000)
    await work.poll(env, "w3", None, 5000)
    assert len(forgets) == 3 and await _recorded_at(work, env, "old") is None
    assert await _recorded_at(work, env, "w1") is not None


async def test_an_empty_long_poll_ends_within_the_last_fifth_of_block_ms(
    store: Store, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, env = await queue_with_environment(store, clock)
    for draw, expected in ((1.0, 0.8), (0.0, 1.0)):
        monkeypatch.setattr(work_module.random, "random", lambda d=draw: d)
        started = time.monotonic()
        assert await work.poll(env, "w1", 300, 5000) is None
        elapsed = time.monotonic() - started
        assert 0.3 * expected - 0.01 <= elapsed < 0.3 * expected + 0.05


async def test_a_long_poll_that_times_out_does_not_look_again(
    store: Store, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, env = await queue_with_environment(store, clock)
    first_looks = calls_to(monkeypatch, store, "deliver_in_environment")
    looks = calls_to(monkeypatch, store, "deliver_next")
    assert await work.poll(env, "w1", 50, 5000) is None
    assert [args[0] for args in first_looks] == [env] and looks == []


async def test_a_poll_of_an_unknown_environment_fails_and_stops_listening(
    store: Store, clock: ManualClock
) -> None:
    # The poll listens before its first look, which is where it learns the environment
    # does not exist: the failed poll must not stay registered for a wake-up.
    work, _ = await queue_with_environment(store, clock)
    assert isinstance(work.notifier, LocalNotifier)
    with pytest.raises(EnvironmentNotFound):
        await work.poll("env_nope", "w1", 60_000, 5000)
    assert work.notifier.waiting("env_nope") == 0
    assert await _recorded_at(work, "env_nope", "w1") is None


async def test_noted_polls_are_written_together_within_the_flush_interval(
    store: Store, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, env = await queue_with_environment(store, clock)
    work.polls.flush_every_ms = 50
    writes = calls_to(monkeypatch, store, "record_polls")
    for worker in ("w1", "w2", "w3"):
        await work.poll(env, worker, None, 5000)
    assert writes == []  # noted, not yet written
    await asyncio.sleep(0.3)
    assert [sorted(w for _, w, _ in args[0]) for args in writes] == [["w1", "w2", "w3"]]
    assert await _recorded_at(work, env, "w2") == clock.now_ms()
    # The stats of this process count a poll noted a moment ago; closing writes the rest.
    await work.poll(env, "w4", None, 5000)
    assert (await work.stats(env)).workers_polling == 4
    await work.poll(env, "w5", None, 5000)
    await work.close()
    assert len(writes) == 3 and [w for _, w, _ in writes[-1][0]] == ["w5"]
