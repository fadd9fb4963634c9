"""Store methods of environments and their work queues, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses

from shopfloor.store import Store
from shopfloor.store.records import (
    CLAIMED,
    PENDING,
    PROJECT_ENVIRONMENT,
    Delivery,
    Expect,
    ProjectRecord,
    QueueStats,
)
from tests.store.test_contract import add, session


def project(pid: str, created: int = 0) -> ProjectRecord:
    return ProjectRecord(
        id=pid,
        kind=PROJECT_ENVIRONMENT,
        name=pid,
        created_at=created,
        updated_at=created,
        config={"type": "self_hosted"},
        metadata={"k": "v"},
    )


async def test_projects_round_trip_page_and_archive(store: Store) -> None:
    for pid in ("env_a", "env_b", "env_c"):
        await store.insert_project(project(pid))
    assert await store.get_project("env_b") == project("env_b")
    first = await store.list_projects(
        PROJECT_ENVIRONMENT, include_archived=False, after_id=None, limit=2
    )
    assert [p.id for p in first] == ["env_a", "env_b"]
    rest = await store.list_projects(
        PROJECT_ENVIRONMENT, include_archived=False, after_id="env_b", limit=2
    )
    assert [p.id for p in rest] == ["env_c"]
    archived = await store.update_project("env_a", 0, {"archived_at": 5, "updated_at": 5})
    assert archived is not None and archived.archived_at == 5
    # The compare-and-set on updated_at refuses a writer that read an older version.
    assert await store.update_project("env_a", 0, {"name": "late"}) is None
    live = await store.list_projects(
        PROJECT_ENVIRONMENT, include_archived=False, after_id=None, limit=10
    )
    assert [p.id for p in live] == ["env_b", "env_c"]
    every = await store.list_projects(
        PROJECT_ENVIRONMENT, include_archived=True, after_id=None, limit=10
    )
    assert [p.id for p in every] == ["env_a", "env_b", "env_c"]
    # Bounds on the creation time (epoch ms), both inclusive.
    await store.insert_project(project("env_d", created=10))
    await store.insert_project(project("env_e", created=20))
    window = await store.list_projects(
        PROJECT_ENVIRONMENT,
        include_archived=True,
        after_id=None,
        limit=10,
        created_from=10,
        created_until=20,
    )
    assert [p.id for p in window] == ["env_d", "env_e"]
    later = await store.list_projects(
        PROJECT_ENVIRONMENT, include_archived=True, after_id=None, limit=10, created_from=11
    )
    assert [p.id for p in later] == ["env_e"]
    earlier = await store.list_projects(
        PROJECT_ENVIRONMENT, include_archived=False, after_id=None, limit=10, created_until=19
    )
    assert [p.id for p in earlier] == ["env_b", "env_c", "env_d"]
    assert await store.delete_project("env_c")
    assert not await store.delete_project("env_c")
    assert await store.get_project("env_c") is None


async def test_deliver_next_marks_delivery_and_redelivers_after_the_window(store: Store) -> None:
    first, second = session(queue="env_q", queued_at=1), session(queue="env_q", queued_at=2)
    await add(store, first, second)
    got = await store.deliver_next("env_q", "w1", now=100, redeliver_before=95)
    assert got is not None
    assert (got.id, got.delivered_to, got.delivered_at, got.status) == (
        first.id,
        "w1",
        100,
        PENDING,
    )
    again = await store.deliver_next("env_q", "w2", now=101, redeliver_before=96)
    assert again is not None and again.id == second.id
    assert await store.deliver_next("env_q", "w3", now=102, redeliver_before=97) is None
    # Once the first delivery is old enough, the item goes out again.
    late = await store.deliver_next("env_q", None, now=110, redeliver_before=100)
    assert late is not None and (late.id, late.delivered_to) == (first.id, None)


async def test_deliver_in_environment_delivers_only_from_an_environment(store: Store) -> None:
    # A queue whose name is no environment's: nothing delivered, and it says so.
    stray = session(queue="env_gone", queued_at=1)
    await add(store, stray)
    assert await store.deliver_in_environment("env_gone", "w1", 100, 95) == Delivery(False, None)
    untouched = await store.get_session(stray.id)
    assert untouched is not None and untouched.delivered_at is None
    # A project of another kind is not an environment either.
    await store.insert_project(dataclasses.replace(project("env_other"), kind="team"))
    assert await store.deliver_in_environment("env_other", "w1", 100, 95) == Delivery(False, None)
    # An environment: its head item, marked delivered; then nothing due.
    await store.insert_project(project("env_gone"))
    looked = await store.deliver_in_environment("env_gone", "w1", 100, 95)
    assert looked.environment_found and looked.item is not None
    assert (looked.item.id, looked.item.delivered_to, looked.item.delivered_at) == (
        stray.id,
        "w1",
        100,
    )
    assert await store.deliver_in_environment("env_gone", "w2", 101, 96) == Delivery(True, None)


async def test_concurrent_deliveries_never_hand_out_an_item_twice(store: Store) -> None:
    await add(store, *[session(queue="env_c", queued_at=i) for i in range(30)])

    async def drain(wid: str) -> list[str]:
        got: list[str] = []
        while item := await store.deliver_next("env_c", wid, now=1, redeliver_before=0):
            got.append(item.id)
        return got

    results = await asyncio.gather(*(drain(f"w{i}") for i in range(6)))
    everything = [sid for r in results for sid in r]
    assert len(everything) == 30
    assert len(set(everything)) == 30


async def test_queue_stats_split_depth_pending_and_count_recent_pollers(store: Store) -> None:
    a, b, c = (session(queue="env_s", queued_at=t) for t in (10, 20, 30))
    await add(store, a, b, c, session(queue="elsewhere", queued_at=1))
    await store.deliver_next("env_s", "w1", now=100, redeliver_before=0)  # a, recent
    await store.record_polls([("env_s", "w1", 100), ("env_s", "w2", 50)])
    await store.record_polls([("env_s", "w1", 120)])  # an upsert, not a second row
    stats = await store.queue_stats("env_s", recent_since=95, polling_since=60)
    assert stats == QueueStats(depth=2, pending=1, oldest_queued_at=10, workers_polling=1)
    empty = await store.queue_stats("env_none", recent_since=0, polling_since=0)
    assert empty == QueueStats(depth=0, pending=0, oldest_queued_at=None, workers_polling=0)
    await store.forget_pollers("env_s", before=110)  # w2 (50) and w1 (120) were recorded
    stats = await store.queue_stats("env_s", recent_since=95, polling_since=0)
    assert stats.workers_polling == 1


async def test_list_queue_pages_in_id_order_both_ways(store: Store) -> None:
    ids = [f"sess_{i:02d}" for i in range(5)]
    await add(store, *[session(queue="env_l", id=i) for i in ids], session(queue="x"))
    assert [
        s.id for s in await store.list_queue("env_l", after_id=None, before_id=None, limit=2)
    ] == ids[:2]
    after = await store.list_queue("env_l", after_id=ids[1], before_id=None, limit=2)
    assert [s.id for s in after] == ids[2:4]
    before = await store.list_queue("env_l", after_id=None, before_id=ids[4], limit=2)
    assert [s.id for s in before] == ids[2:4]
    assert await store.count_unfinished("env_l") == 5


async def test_expect_columns_make_an_update_compare_and_set(store: Store) -> None:
    s = session(queue="env_h")
    await add(store, s)
    changed = await store.update_session(
        s.id,
        Expect(None, 0, (PENDING,), columns={"last_heartbeat_at": None}),
        {"status": CLAIMED, "last_heartbeat_at": 7},
        None,
    )
    assert changed is not None and changed.last_heartbeat_at == 7
    stale = await store.update_session(
        s.id, Expect(None, 0, columns={"last_heartbeat_at": None}), {"last_heartbeat_at": 8}, None
    )
    assert stale is None
    fresh = await store.update_session(
        s.id, Expect(None, 0, columns={"last_heartbeat_at": 7}), {"last_heartbeat_at": 8}, None
    )
    assert fresh is not None and fresh.last_heartbeat_at == 8
