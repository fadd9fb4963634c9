"""Store contract for the grouped totals behind /metrics and the console (both backends)."""

from __future__ import annotations

from dataclasses import replace

from shopfloor.store import Store
from shopfloor.store.records import COMPLETED, RUNNING, WORKER_DEAD
from shopfloor.store.stats_records import SessionCount, StatsScope, WorkerCount
from tests.store.test_contract import add, session, worker


async def test_open_sessions_are_counted_by_org_queue_project_and_status(store: Store) -> None:
    await add(
        store,
        session("q1", queued_at=10, project="a"),
        session("q1", queued_at=5, project="a"),
        session("q1", queued_at=7, project="b"),
        session("q2", queued_at=1, project="a", org_id="org_b"),
    )
    await add(store, replace(session("q1", queued_at=3, project="a"), status=RUNNING))
    await add(store, replace(session("q1", queued_at=2, project="a"), status=COMPLETED))

    counts = sorted(
        await store.session_counts(StatsScope()), key=lambda c: (c.queue, c.project, c.status)
    )
    assert counts == [
        SessionCount("org_default", "q1", "a", "pending", 2, 5),
        SessionCount("org_default", "q1", "a", "running", 1, 3),
        SessionCount("org_default", "q1", "b", "pending", 1, 7),
        SessionCount("org_b", "q2", "a", "pending", 1, 1),
    ]


async def test_session_counts_keep_to_an_org_and_its_projects(store: Store) -> None:
    await add(
        store,
        session("q1", project="a"),
        session("q1", project="b"),
        session("q2", project="a", org_id="org_b"),
    )
    only_b = await store.session_counts(StatsScope(org_id="org_b"))
    assert [(c.org_id, c.queue, c.count) for c in only_b] == [("org_b", "q2", 1)]
    project_b = await store.session_counts(StatsScope("org_default", frozenset({"b"})))
    assert [(c.project, c.count) for c in project_b] == [("b", 1)]
    assert await store.session_counts(StatsScope(org_id="org_none")) == []


async def test_active_workers_are_counted_with_their_capacity_and_load(store: Store) -> None:
    await store.insert_worker(worker("w1", capacity=3))
    await store.insert_worker(replace(worker("w2", capacity=4), active_count=2))
    await store.insert_worker(replace(worker("w3", capacity=2), org_id="org_b"))
    await store.insert_worker(replace(worker("w4", capacity=8), status=WORKER_DEAD))

    counts = sorted(await store.worker_counts(None), key=lambda c: (c.org_id, c.status))
    assert counts == [  # the dead one is not counted
        WorkerCount("org_b", "agentfactory", "active", 1, 2, 0),
        WorkerCount("org_default", "agentfactory", "active", 2, 7, 2),
    ]
    assert [c.org_id for c in await store.worker_counts("org_b")] == ["org_b"]
