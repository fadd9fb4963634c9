"""The run-oriented part of the store contract (RunStore), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from shopfloor.store import Store
from shopfloor.store.records import (
    CLAIMED,
    LIVE_STATUSES,
    PENDING,
    Expect,
    SessionEvent,
    SessionRecord,
    WorkerRecord,
)
from shopfloor.store.run_records import AgentWorkerRecord, RunRecord, WorkerSessionRecord

QUEUE = "vf:p:kind:key"


def worker(wid: str, status: str = "active") -> WorkerRecord:
    return WorkerRecord(
        id=wid,
        protocol="veryfront",
        hostname="h",
        capacity=1,
        status=status,
        registered_at=0,
        last_heartbeat_at=0,
    )


def details(wid: str, token_hash: str = "t1", key: str = "key") -> AgentWorkerRecord:
    return AgentWorkerRecord(
        worker_id=wid,
        project_id="p",
        project_name="p",
        implementation_kind="kind",
        worker_key=key,
        token_hash=token_hash,
        created_at=0,
        updated_at=0,
    )


def run_pair(run_id: str, idem: str | None = None) -> tuple[SessionRecord, RunRecord, SessionEvent]:
    sid = f"sess_{uuid.uuid4().hex}"
    session = SessionRecord(
        id=sid, queue=QUEUE, status=PENDING, priority=3, queued_at=0, created_at=0, updated_at=0
    )
    run = RunRecord(
        run_id=run_id,
        session_id=sid,
        project_id="p",
        conversation_id=str(uuid.uuid4()),
        message_id=str(uuid.uuid4()),
        agent_id="a",
        implementation_kind="kind",
        worker_key="key",
        request_snapshot={"messages": []},
        idempotency_key=idem,
        created_at=0,
        updated_at=0,
    )
    return session, run, SessionEvent(session_id=sid, at=0, kind="status", status=PENDING)


async def test_register_agent_worker_inserts_then_revives_by_key(store: Store) -> None:
    w, d = await store.register_agent_worker(worker("w1"), details("w1", "hash-1"))
    assert (w.id, d.worker_id) == ("w1", "w1")
    assert await store.end_worker("w1", "deregistered", 5)
    again, d2 = await store.register_agent_worker(
        dataclasses.replace(worker("w2"), last_heartbeat_at=9), details("w2", "hash-2")
    )
    assert (again.id, again.status, again.ended_at, again.last_heartbeat_at) == (
        "w1",
        "active",
        None,
        9,
    )
    assert d2.worker_id == "w1" and d2.token_hash == "hash-2"
    assert await store.get_worker("w2") is None
    assert await store.find_agent_worker_by_token("hash-1") is None
    found = await store.find_agent_worker_by_token("hash-2")
    assert found is not None and found.worker_id == "w1"
    other, _ = await store.register_agent_worker(worker("w3"), details("w3", "hash-3", key="k2"))
    assert other.id == "w3"


async def test_concurrent_registrations_of_one_key_make_one_worker(store: Store) -> None:
    results = await asyncio.gather(
        *(store.register_agent_worker(worker(f"c{i}"), details(f"c{i}", f"h{i}")) for i in range(5))
    )
    assert len({w.id for w, _ in results}) == 1


async def test_insert_run_refuses_a_taken_run_id_or_idempotency_key(store: Store) -> None:
    assert await store.insert_run(*run_pair("run_1", idem="i1"))
    assert not await store.insert_run(*run_pair("run_1"))
    assert not await store.insert_run(*run_pair("run_2", idem="i1"))
    assert await store.insert_run(*run_pair("run_3"))
    assert await store.insert_run(*run_pair("run_4"))  # NULL keys never collide
    found = await store.find_run_by_idempotency("p", "i1")
    assert found is not None and found.run_id == "run_1"
    assert await store.find_run_by_idempotency("other", "i1") is None
    assert await store.count_pending(QUEUE) == 3  # the refused inserts left no session


async def test_append_is_fenced_by_the_lease_and_the_cursor(store: Store) -> None:
    session, run, event = run_pair("run_a")
    await store.insert_run(session, run, event)
    assert await store.get_run_by_session(session.id) == run
    [claimed] = await store.claim_next(QUEUE, "w1", 1, 100, lease_expires_at=200)
    assert claimed.status == CLAIMED
    fence = Expect("w1", claimed.lease_epoch, LIVE_STATUSES, lease_valid_at=150)
    events = [{"type": "A"}, {"type": "B", "x": 1}]
    after = await store.append_run_events("run_a", fence, events, 150, expected_external_sequence=0)
    assert after is not None
    assert (after.latest_event_id, after.latest_external_event_sequence) == (2, 2)
    stale = await store.append_run_events("run_a", fence, events, 150, expected_external_sequence=0)
    assert stale is None
    assert await store.append_run_events("run_a", fence, events, 150, expected_event_id=1) is None
    expired = dataclasses.replace(fence, lease_valid_at=201)
    assert await store.append_run_events("run_a", expired, events, 201) is None
    wrong = Expect("w2", claimed.lease_epoch, LIVE_STATUSES, lease_valid_at=150)
    assert await store.append_run_events("run_a", wrong, events, 150) is None
    old_epoch = Expect("w1", claimed.lease_epoch - 1, LIVE_STATUSES, lease_valid_at=150)
    assert await store.append_run_events("run_a", old_epoch, events, 150) is None
    stored = await store.list_run_events("run_a")
    assert [(e.event_id, e.type, e.payload) for e in stored] == [
        (1, "A", {"type": "A"}),
        (2, "B", {"type": "B", "x": 1}),
    ]
    assert [e.event_id for e in await store.list_run_events("run_a", after_event_id=1)] == [2]


async def test_concurrent_appends_get_distinct_event_ids(store: Store) -> None:
    session, run, event = run_pair("run_c")
    await store.insert_run(session, run, event)
    [claimed] = await store.claim_next(QUEUE, "w1", 1, 100, lease_expires_at=10_000)
    fence = Expect("w1", claimed.lease_epoch, LIVE_STATUSES, lease_valid_at=100)
    await asyncio.gather(
        *(store.append_run_events("run_c", fence, [{"type": "E"}] * 3, 100) for _ in range(5))
    )
    ids = [e.event_id for e in await store.list_run_events("run_c")]
    assert ids == list(range(1, 16))
    final = await store.get_run("run_c")
    assert final is not None and final.latest_external_event_sequence == 15


async def test_finish_run_changes_both_rows_only_under_the_fence(store: Store) -> None:
    session, run, event = run_pair("run_f")
    await store.insert_run(session, run, event)
    [claimed] = await store.claim_next(QUEUE, "w1", 1, 100, lease_expires_at=200)
    done = SessionEvent(session_id=session.id, at=150, kind="status", status="completed")
    stale = Expect("w1", claimed.lease_epoch + 1, LIVE_STATUSES)
    assert (
        await store.finish_run("run_f", session.id, stale, {"status": "completed"}, {}, done)
        is None
    )
    fence = Expect("w1", claimed.lease_epoch, LIVE_STATUSES, lease_valid_at=150)
    finished = await store.finish_run(
        "run_f",
        session.id,
        fence,
        {"status": "completed", "lease_expires_at": None},
        {"terminal_error_code": "X", "updated_at": 150},
        done,
    )
    assert finished is not None
    assert finished[0].status == "completed" and finished[1].terminal_error_code == "X"
    history = await store.session_events(session.id)
    assert [e.status for e in history] == [PENDING, CLAIMED, "completed"]


async def test_renewal_fence_refuses_an_expired_lease(store: Store) -> None:
    session, run, event = run_pair("run_r")
    await store.insert_run(session, run, event)
    [claimed] = await store.claim_next(QUEUE, "w1", 1, 100, lease_expires_at=200)
    late = Expect("w1", claimed.lease_epoch, LIVE_STATUSES, lease_valid_at=201)
    assert await store.update_session(session.id, late, {"lease_expires_at": 500}, None) is None
    on_time = dataclasses.replace(late, lease_valid_at=200)
    renewed = await store.update_session(session.id, on_time, {"lease_expires_at": 500}, None)
    assert renewed is not None and renewed.lease_expires_at == 500


async def test_worker_session_upsert_keeps_id_and_created_at(store: Store) -> None:
    first = WorkerSessionRecord(
        id="s1",
        run_id="run_s",
        worker_id="w1",
        implementation_kind="kind",
        session_key="k",
        status="active",
        created_at=1,
        updated_at=1,
        metadata={"a": 1},
    )
    assert await store.put_worker_session(first) == first
    second = dataclasses.replace(
        first, id="ignored", status="completed", created_at=9, updated_at=9, ended_at=9
    )
    stored = await store.put_worker_session(second)
    assert (stored.id, stored.created_at, stored.status, stored.ended_at) == (
        "s1",
        1,
        "completed",
        9,
    )
    assert await store.get_worker_session("run_s", "w1") == stored
    assert await store.get_worker_session("run_s", "w2") is None


async def test_run_state_is_the_run_its_session_and_the_holders_worker_session(
    store: Store,
) -> None:
    session, run, event = run_pair("run_st")
    await store.insert_run(session, run, event)
    assert await store.get_run_state("run_nope") is None
    found = await store.get_run_state("run_st")
    assert found == (run, await store.get_session(session.id), None)  # queued: no holder
    [claimed] = await store.claim_next(QUEUE, "w1", 1, 100, lease_expires_at=200)
    for wid in ("w1", "w2"):  # the holder's worker session, and another worker's
        await store.put_worker_session(
            WorkerSessionRecord(
                id=f"ws-{wid}",
                run_id="run_st",
                worker_id=wid,
                implementation_kind="kind",
                session_key=wid,
                status="active",
                created_at=1,
                updated_at=1,
                metadata={"of": wid},
            )
        )
    found = await store.get_run_state("run_st")
    assert found is not None
    got_run, got_session, worker_session = found
    assert got_run == run and got_session == claimed
    assert worker_session == await store.get_worker_session("run_st", "w1")
    assert worker_session is not None and worker_session.metadata == {"of": "w1"}


async def test_a_worker_token_finds_the_agent_worker_with_its_worker(store: Store) -> None:
    w, d = await store.register_agent_worker(worker("w1"), details("w1", "hash-1"))
    assert await store.find_agent_worker_and_worker_by_token("hash-1") == (d, w)
    assert await store.find_agent_worker_and_worker_by_token("hash-2") is None
