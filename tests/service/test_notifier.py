"""The in-process notifier, and that enqueues and requeues wake waiting polls."""

from __future__ import annotations

import asyncio

import pytest

from shopfloor.clock import ManualClock
from shopfloor.service.dispatch import Dispatcher, NewSession
from shopfloor.service.notifier import LocalNotifier
from shopfloor.store import Store


async def test_wait_returns_true_when_notified_and_false_on_timeout() -> None:
    notifier = LocalNotifier()
    waiter = asyncio.create_task(notifier.wait("q", 5))
    await asyncio.sleep(0)
    await notifier.notify("other")
    await notifier.notify("q")
    assert await waiter is True
    assert await notifier.wait("q", 0.01) is False


async def test_enqueue_wakes_a_waiter_on_its_queue(store: Store) -> None:
    notifier = LocalNotifier()
    dispatcher = Dispatcher(store, ManualClock(), worker_ttl_seconds=300, notifier=notifier)
    waiter = asyncio.create_task(notifier.wait("env_1", 5))
    other = asyncio.create_task(notifier.wait("env_2", 0.2))
    await asyncio.sleep(0)
    await dispatcher.create_session(NewSession(queue="env_1", prompt="hi"))
    assert await waiter is True
    assert await other is False


async def test_requeue_wakes_the_queue(store: Store) -> None:
    clock = ManualClock()
    notifier = LocalNotifier()
    dispatcher = Dispatcher(store, clock, worker_ttl_seconds=10, notifier=notifier)
    worker = await dispatcher.register_worker(hostname="h", capacity=1, version=None, projects=None)
    await dispatcher.create_session(NewSession(prompt="x"))
    assert len((await dispatcher.poll(worker.id)).claimed) == 1
    clock.advance(11)
    waiter = asyncio.create_task(notifier.wait("agentfactory", 5))
    await asyncio.sleep(0)
    report = await dispatcher.reap()
    assert report.dead_workers == [worker.id]
    assert await waiter is True


async def waiting_in_order(notifier: LocalNotifier, *seconds: float) -> list[asyncio.Task[bool]]:
    """Waiters on queue `q`, one per timeout, each registered before the next starts."""
    waiters = []
    for timeout in seconds:
        waiters.append(asyncio.create_task(notifier.wait("q", timeout)))
        await asyncio.sleep(0)
    return waiters


async def test_each_notification_wakes_one_waiter_longest_waiting_first() -> None:
    notifier = LocalNotifier()
    first, second = await waiting_in_order(notifier, 5, 0.3)
    await notifier.notify("q")
    assert await first is True
    assert await second is False  # one item, one wake-up: the other poll sleeps on


async def test_a_waiter_cancelled_after_its_wake_up_passes_it_on() -> None:
    notifier = LocalNotifier()
    first, second = await waiting_in_order(notifier, 5, 5)
    await notifier.notify("q")  # wakes the first...
    first.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second is True
    assert notifier.waiting("q") == 0


async def test_lost_connection_wakes_every_waiter() -> None:
    notifier = LocalNotifier()
    waiters = [asyncio.create_task(notifier.wait(q, 5)) for q in ("a", "a", "b")]
    await asyncio.sleep(0)
    notifier.wake_all()
    assert await asyncio.gather(*waiters) == [True, True, True]


async def test_publish_wakes_every_waiter_on_the_topic() -> None:
    """A managed session's new event is for every stream watching it, not one."""
    notifier = LocalNotifier()
    watchers = await waiting_in_order(notifier, 5, 5, 5)
    other = asyncio.create_task(notifier.wait("other", 0.2))
    await asyncio.sleep(0)
    await notifier.publish("q")
    assert await asyncio.gather(*watchers) == [True, True, True]
    assert await other is False
