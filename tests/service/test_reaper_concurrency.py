"""Every server process runs a reaper, so several reap passes run at once on one database.
Each dead worker is declared dead once and each session is requeued exactly once, because
ending a worker is a conditional update and every requeue is fenced by owner, lease epoch and
(for an expired lease) the expiry itself."""

from __future__ import annotations

import asyncio
from collections import Counter

from shopfloor.clock import ManualClock
from shopfloor.service.dispatch import Dispatcher, NewSession, StatusReport
from shopfloor.store import open_store
from shopfloor.store.records import PENDING
from tests.conftest import Backend

WORKER_TTL = 60.0
CLAIM_TTL = 30.0


async def test_concurrent_reapers_requeue_each_session_exactly_once(backend: Backend) -> None:
    clock = ManualClock()
    # Postgres: replicas over two separate connection pools. SQLite has one writing process
    # with one connection (its transactions hold the write lock until their group's COMMIT,
    # a turn of the loop later), so there the four reapers share it.
    pools = 2 if backend.name == "postgres" else 1
    stores = [await open_store(backend.url, schema=backend.schema) for _ in range(pools)]
    try:
        # Four replicas' worth of reapers.
        replicas = [
            Dispatcher(st, clock, worker_ttl_seconds=WORKER_TTL, claim_ttl_seconds=CLAIM_TTL)
            for st in stores
            for _ in range(4 // pools)
        ]
        d = replicas[0]
        for n in range(40):
            await d.create_session(NewSession(prompt=f"job {n}"))

        async def fleet_worker(capacity: int) -> tuple[str, list[str]]:
            w = await d.register_worker(
                hostname="h", capacity=capacity, version=None, projects=None
            )
            held = [s.id for s in (await d.poll(w.id)).claimed]
            return w.id, held

        silent = [await fleet_worker(5) for _ in range(6)]
        alive_id, alive_held = await fleet_worker(5)
        # Silent workers run some of their sessions and leave others pre-claimed, so some
        # sessions are reachable by both reaper paths (dead worker and expired lease).
        for wid, held in silent:
            for sid in held[:3]:
                await d.report_status(sid, wid, StatusReport("running"))
        await d.report_status(alive_held[0], alive_id, StatusReport("running"))

        clock.advance(max(WORKER_TTL, CLAIM_TTL) + 1)
        await d.heartbeat(alive_id, 1)  # this one is alive; only its idle pre-claims expire

        reports = await asyncio.gather(*(r.reap() for r in replicas for _ in range(3)))

        dead = Counter(w for rep in reports for w in rep.dead_workers)
        assert dead == Counter(w for w, _ in silent)
        expected = {sid for _, held in silent for sid in held} | set(alive_held[1:])
        requeued = Counter(sid for rep in reports for sid in rep.requeued)
        assert set(requeued) == expected
        assert set(requeued.values()) == {1}
        for sid in expected:
            history = await d.history(sid)
            requeues = [e for e in history if e.status == PENDING and e.reason != "created"]
            assert len(requeues) == 1, history
            assert (await d.get_session(sid)).status == PENDING
        running = await d.get_session(alive_held[0])
        assert running.status == "running" and running.worker_id == alive_id
    finally:
        for st in stores:
            await st.close()
