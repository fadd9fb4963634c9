"""Random operation sequences against the work queue (service layer, manual clock): the state
machine's invariants hold whatever order workers, operators and the reaper act in."""

from __future__ import annotations

import random

import pytest

from shopfloor.clock import ManualClock
from shopfloor.service.dispatch import Dispatcher, NewSession
from shopfloor.service.environments import Environments, NewEnvironment
from shopfloor.service.errors import HeartbeatPreconditionFailed, WorkConflict
from shopfloor.service.work import NO_HEARTBEAT, WorkQueue, work_id_for, work_state
from shopfloor.store import Store

LIVE = {"starting", "active", "stopping"}


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_operations_keep_the_work_invariants(
    store: Store, clock: ManualClock, seed: int
) -> None:
    rng = random.Random(seed)
    dispatcher = Dispatcher(store, clock, worker_ttl_seconds=300)
    work = WorkQueue(dispatcher)
    env = (await Environments(store, clock).create(NewEnvironment(name="p"))).id
    items: list[str] = []
    delivered: dict[str, int] = {}  # work id -> when a poll last handed it out
    ever_stopped: set[str] = set()
    last_beat: dict[str, int | None] = {}

    async def state(wid: str) -> str:
        return work_state(await work.get(env, wid))

    for _ in range(150):
        op = rng.choice(["enqueue", "poll", "ack", "beat", "stop", "force", "tick", "reap"])
        wid = rng.choice(items) if items else None
        before = None if wid is None else await state(wid)
        if op == "enqueue":
            s = await dispatcher.create_session(NewSession(queue=env, prompt="x"))
            items.append(work_id_for(s.id))
        elif op == "poll":
            reclaim = rng.choice([0, 5000])
            got = await work.poll(env, rng.choice(["w1", "w2", None]), None, reclaim)
            if got is not None:
                gid = work_id_for(got.id)
                assert work_state(got) == "queued"
                if gid in delivered:  # redelivered: only once its reclaim window has passed
                    assert clock.now_ms() - delivered[gid] >= reclaim
                delivered[gid] = clock.now_ms()
        elif op == "ack" and wid is not None:
            try:
                acked = await work.ack(env, wid, None)
                assert before in ("queued", "starting", "active")
                assert work_state(acked) in ("starting", "active")
                if before == "queued":
                    last_beat[wid] = None
            except WorkConflict:
                assert before in ("stopping", "stopped")
        elif op == "beat" and wid is not None:
            expected = rng.choice([None, NO_HEARTBEAT, last_beat.get(wid)])
            try:
                hb = await work.heartbeat(env, wid, expected, rng.choice([None, 10, 60]))
                assert before in LIVE and hb.state in ("active", "stopping")
                assert hb.last_heartbeat > (last_beat.get(wid) or 0)
                last_beat[wid] = hb.last_heartbeat
            except WorkConflict:
                assert before in ("queued", "stopped")
            except HeartbeatPreconditionFailed:
                assert before in ("starting", "active")
        elif op in ("stop", "force") and wid is not None:
            try:
                stopped = await work.stop(env, wid, force=op == "force", worker_id=None)
                after = work_state(stopped)
                if op == "force" or before in ("starting", "stopping", "stopped"):
                    assert after == "stopped"
                else:
                    assert (before, after) == ("active", "stopping")
            except WorkConflict:
                assert (op, before) == ("stop", "queued")
        elif op == "tick":
            clock.advance(rng.choice([1, 6, 31, 70]))
        elif op == "reap":
            for sid in (await dispatcher.reap()).requeued:
                rid = work_id_for(sid)
                assert rid not in ever_stopped
                delivered.pop(rid, None)  # a requeued item is deliverable at once
        if wid is not None:
            current = await state(wid)
            if wid in ever_stopped:
                assert current == "stopped"  # stopped is final
            if current == "stopped":
                ever_stopped.add(wid)
    for known in ever_stopped:
        assert await state(known) == "stopped"
    stats = await work.stats(env)
    queued = [i for i in items if await state(i) == "queued"]
    assert stats.depth + stats.pending == len(queued)
