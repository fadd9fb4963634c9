"""An idle worker's empty poll is held until work arrives (`poll_hold_ms`), and claims it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from shopfloor.clock import ManualClock
from shopfloor.service.dispatch import AGENTFACTORY_QUEUE, Dispatcher, NewSession
from shopfloor.service.notifier import LocalNotifier
from shopfloor.store import Store
from tests.agentfactory.helpers import enqueue, poll, register
from tests.conftest import Backend, make_settings, running_app


@asynccontextmanager
async def holding_api(
    backend: Backend, tmp_path: Path, clock: ManualClock, hold_ms: int
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(backend, tmp_path, poll_hold_ms=hold_ms)
    async with running_app(settings, clock) as api:
        yield api


def notifier_of(api: httpx.AsyncClient) -> LocalNotifier:
    notifier = api.app.state.services.dispatcher.notifier  # type: ignore[attr-defined]
    assert isinstance(notifier, LocalNotifier)
    return notifier


async def until_waiting(notifier: LocalNotifier, count: int) -> None:
    """Until `count` polls are held (the notifier signals no such event: look, then sleep)."""
    async with asyncio.timeout(10):
        while notifier.waiting(AGENTFACTORY_QUEUE) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_a_held_poll_claims_work_that_arrives_while_it_waits(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    # The hold is far longer than the test: only the enqueue's wake-up can end this poll
    # with work (a poll that ran out its hold would answer empty).
    async with holding_api(backend, tmp_path, clock, hold_ms=60_000) as api:
        wid = await register(api, capacity=2)
        held = asyncio.create_task(poll(api, wid))
        await until_waiting(notifier_of(api), 1)
        session = await enqueue(api)
        reply = await held
        assert [w["sessionId"] for w in reply["work"]] == [session["sessionId"]]
        assert reply["preClaimed"] is True
        assert reply["claimedSessionIds"] == [session["sessionId"]]


async def test_an_empty_held_poll_answers_empty_when_its_hold_ends(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    async with holding_api(backend, tmp_path, clock, hold_ms=300) as api:
        wid = await register(api)
        loop = asyncio.get_running_loop()
        started = loop.time()
        reply = await poll(api, wid)
        assert loop.time() - started >= 0.3
        assert reply["work"] == [] and reply["preClaimed"] is False
        assert notifier_of(api).waiting(AGENTFACTORY_QUEUE) == 0


async def test_a_worker_without_free_capacity_is_answered_at_once(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    async with holding_api(backend, tmp_path, clock, hold_ms=60_000) as api:
        wid = await register(api, capacity=1)
        await enqueue(api)
        assert len((await poll(api, wid))["work"]) == 1
        # A held poll here would run into the timeout: the worker can take nothing more.
        reply = await asyncio.wait_for(poll(api, wid), timeout=30)
        assert reply["work"] == []


async def test_one_arrival_goes_to_one_of_many_held_polls(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    async with holding_api(backend, tmp_path, clock, hold_ms=2_000) as api:
        workers = [await register(api, capacity=1) for _ in range(4)]
        held = [asyncio.create_task(poll(api, w)) for w in workers]
        await until_waiting(notifier_of(api), 4)
        session = await enqueue(api)
        replies = await asyncio.gather(*held)
        claimed = [w["sessionId"] for r in replies for w in r["work"]]
        assert claimed == [session["sessionId"]]


async def test_a_held_poll_whose_caller_has_gone_claims_nothing(
    store: Store, clock: ManualClock
) -> None:
    # Two idle workers' polls are held; the first (the longest waiting, so the one an
    # enqueue wakes) loses its caller. The arrival must go to the second, and the first
    # must claim nothing, whichever of the disconnect and the wake-up it sees first.
    notifier = LocalNotifier()
    dispatcher = Dispatcher(
        store, clock, worker_ttl_seconds=300, notifier=notifier, poll_hold_ms=60_000
    )
    first, second = [
        await dispatcher.register_worker(hostname=name, capacity=1, version=None, projects=None)
        for name in ("a", "b")
    ]
    gone, never = asyncio.Event(), asyncio.Event()
    abandoned = asyncio.create_task(dispatcher.poll(first.id, disconnected=gone.wait))
    await until_waiting(notifier, 1)
    kept = asyncio.create_task(dispatcher.poll(second.id, disconnected=never.wait))
    await until_waiting(notifier, 2)
    gone.set()
    session = await dispatcher.create_session(NewSession(prompt="do it"))
    assert (await abandoned).claimed == []
    assert [s.id for s in (await kept).claimed] == [session.id]
    stored = await store.get_session(session.id)
    assert stored is not None and stored.worker_id == second.id


async def test_a_cancelled_held_poll_stops_listening(store: Store, clock: ManualClock) -> None:
    # A held poll cancelled under it (its request task cancelled, say at shutdown) must not
    # leave its wait registered: the next arrival's wake-up would go to a poll nobody runs.
    notifier = LocalNotifier()
    dispatcher = Dispatcher(
        store, clock, worker_ttl_seconds=300, notifier=notifier, poll_hold_ms=60_000
    )
    first, second = [
        await dispatcher.register_worker(hostname=name, capacity=1, version=None, projects=None)
        for name in ("a", "b")
    ]
    cancelled = asyncio.create_task(dispatcher.poll(first.id))
    await until_waiting(notifier, 1)
    kept = asyncio.create_task(dispatcher.poll(second.id))
    await until_waiting(notifier, 2)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert notifier.waiting(AGENTFACTORY_QUEUE) == 1
    session = await dispatcher.create_session(NewSession(prompt="do it"))
    polled = await asyncio.wait_for(kept, timeout=10)
    assert [s.id for s in polled.claimed] == [session.id]


class WakesAsTheHoldEnds(LocalNotifier):
    """Every wait ends woken, just after its time: the wake-up of a poll whose hold was
    running out (the longest-waiting poll, which a notification wakes first)."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = asyncio.Event()

    async def wait(self, queue: str, seconds: float) -> bool:
        self.waited.set()
        await asyncio.sleep(seconds + 0.01)
        return True


async def test_a_poll_woken_as_its_hold_ends_still_claims(store: Store, clock: ManualClock) -> None:
    notifier = WakesAsTheHoldEnds()
    dispatcher = Dispatcher(
        store, clock, worker_ttl_seconds=300, notifier=notifier, poll_hold_ms=50
    )
    worker = await dispatcher.register_worker(hostname="a", capacity=1, version=None, projects=None)
    held = asyncio.create_task(dispatcher.poll(worker.id))
    await notifier.waited.wait()
    session = await dispatcher.create_session(NewSession(prompt="do it"))
    assert [s.id for s in (await held).claimed] == [session.id]
