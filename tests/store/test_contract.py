"""The store contract: every backend (SQLite, PostgreSQL) must pass every test here."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from shopfloor.store import Store, open_store
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.records import (
    CLAIMED,
    LIVE_STATUSES,
    PENDING,
    RUNNING,
    Expect,
    SessionEvent,
    SessionFilter,
    SessionRecord,
    WorkerRecord,
)
from shopfloor.store.schema import metadata
from shopfloor.store.sql import SqlStore
from shopfloor.store.tenancy_records import (
    DEFAULT_ORG,
    REGISTRATION_KEY,
    ApiKeyRecord,
    M2MClientRecord,
    OrgRecord,
)
from tests.conftest import Backend

_ids = itertools.count()


def session(queue: str = "q", priority: int = 3, queued_at: int = 0, **kw: object) -> SessionRecord:
    sid = kw.pop("id", None) or f"sess_{next(_ids):08d}"
    return SessionRecord(
        id=str(sid),
        queue=queue,
        status=PENDING,
        priority=priority,
        queued_at=queued_at,
        created_at=queued_at,
        updated_at=queued_at,
        **kw,
    )  # type: ignore[arg-type]


def created(s: SessionRecord) -> SessionEvent:
    return SessionEvent(session_id=s.id, at=s.created_at, kind="status", status=PENDING)


async def add(store: Store, *sessions: SessionRecord) -> None:
    for s in sessions:
        await store.insert_session(s, created(s))


def worker(wid: str = "wkr_1", capacity: int = 5, heartbeat: int = 0) -> WorkerRecord:
    return WorkerRecord(
        id=wid,
        protocol="agentfactory",
        hostname="h",
        capacity=capacity,
        status="active",
        registered_at=0,
        last_heartbeat_at=heartbeat,
    )


def _declared(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    """Whether schema.py declares the object: not the full-text index of memories, which is
    each database's own (SQLite's FTS5 table and its shadow tables, PostgreSQL's generated
    tsvector column and its GIN index; migration 0008mc_memories)."""
    if name is not None and (name.startswith("memories_fts") or name == "ix_memories_search"):
        return False
    return not (type_ == "column" and name == "search" and obj.table.name == "memories")


async def test_migrated_schema_matches_table_definitions(store: Store) -> None:
    assert isinstance(store, SqlStore)
    options = {"include_object": _declared}
    async with store.db.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync, opts=options), metadata)
        )
    assert diff == []


async def test_migrating_twice_is_a_no_op(backend: Backend, store: Store) -> None:
    again = await open_store(backend.url, schema=backend.schema)
    await again.close()
    assert await store.count_pending("q") == 0


async def test_claim_order_is_priority_then_fifo_then_id(store: Store) -> None:
    low = session(priority=4, queued_at=1, id="sess_a")
    late = session(priority=2, queued_at=9, id="sess_b")
    early = session(priority=2, queued_at=5, id="sess_c")
    tie = session(priority=2, queued_at=5, id="sess_d")
    await add(store, low, late, early, tie)
    claimed = await store.claim_next("q", "wkr_1", 3, now=100)
    assert [c.id for c in claimed] == ["sess_c", "sess_d", "sess_b"]
    rest = await store.claim_next("q", "wkr_1", 10, now=101)
    assert [c.id for c in rest] == ["sess_a"]


async def test_claim_sets_lease_and_records_history(store: Store) -> None:
    s = session()
    await add(store, s)
    (claimed,) = await store.claim_next("q", "wkr_9", 1, now=50, lease_expires_at=80)
    assert (claimed.status, claimed.worker_id, claimed.claimed_at) == (CLAIMED, "wkr_9", 50)
    assert (claimed.lease_epoch, claimed.lease_expires_at) == (1, 80)
    events = await store.session_events(s.id)
    assert [(e.status, e.worker_id) for e in events] == [(PENDING, None), (CLAIMED, "wkr_9")]
    assert await store.claim_next("q", "wkr_8", 1, now=51) == []


async def test_claim_stays_in_its_queue_and_projects(store: Store) -> None:
    await add(
        store,
        session(queue="other"),
        session(project="a", id="sess_pa"),
        session(project="b", id="sess_pb"),
    )
    claimed = await store.claim_next("q", "wkr_1", 5, now=1, projects=["b"])
    assert [c.id for c in claimed] == ["sess_pb"]


async def poll(store: Store, wid: str, now: int, lease: int | None = None) -> list[str] | None:
    """The ids a worker's poll claims; None if the store refuses the worker."""
    polled = await store.poll_worker("q", wid, 5, now, lease, inbox_per_lane=10)
    return None if polled is None else [c.id for c in polled.claimed]


async def test_a_poll_counts_live_sessions_and_needs_an_active_worker(store: Store) -> None:
    await store.insert_worker(worker(capacity=2))
    await add(store, *[session(queued_at=i) for i in range(4)])
    polled = await store.poll_worker("q", "wkr_1", 5, now=1, lease_expires_at=50, inbox_per_lane=10)
    assert polled is not None and len(polled.claimed) == 2 and polled.inbox == []
    assert {c.lease_expires_at for c in polled.claimed} == {50}
    assert polled.free == 0
    assert await poll(store, "wkr_1", now=2) == []
    done = polled.claimed[0]
    await store.update_session(
        done.id, Expect("wkr_1", done.lease_epoch, LIVE_STATUSES), {"status": "completed"}, None
    )
    (third,) = await poll(store, "wkr_1", now=3) or []
    assert (await store.get_session(third)).worker_id == "wkr_1"  # type: ignore[union-attr]
    assert await store.end_worker("wkr_1", "dead", now=4)
    assert await poll(store, "wkr_1", now=5) is None
    assert await poll(store, "wkr_unknown", now=5) is None


async def test_a_poll_says_how_many_more_sessions_the_worker_could_take(store: Store) -> None:
    await store.insert_worker(worker(capacity=3))
    await add(store, session())
    first = await store.poll_worker("q", "wkr_1", 5, now=1, lease_expires_at=50, inbox_per_lane=10)
    assert first is not None and (len(first.claimed), first.free) == (1, 2)
    again = await store.poll_worker("q", "wkr_1", 5, now=2, lease_expires_at=50, inbox_per_lane=10)
    assert again is not None and (again.claimed, again.free) == ([], 2)


async def test_a_poll_stays_in_the_workers_projects(store: Store) -> None:
    await store.insert_worker(replace(worker(), projects=["b", "c"]))
    await add(store, session(project="a"), session(project="b", id="sess_pb"), session())
    assert await poll(store, "wkr_1", now=1) == ["sess_pb"]


async def test_concurrent_claims_never_hand_out_a_session_twice(store: Store) -> None:
    await add(store, *[session(queued_at=i) for i in range(60)])

    async def drain(wid: str) -> list[str]:
        got: list[str] = []
        while batch := await store.claim_next("q", wid, 3, now=1):
            got.extend(c.id for c in batch)
        return got

    results = await asyncio.gather(*(drain(f"wkr_{i}") for i in range(8)))
    everything = [sid for r in results for sid in r]
    assert len(everything) == 60
    assert len(set(everything)) == 60


async def test_update_is_fenced_by_owner_epoch_and_status(store: Store) -> None:
    s = session()
    await add(store, s)
    (claimed,) = await store.claim_next("q", "wkr_1", 1, now=1)
    change = {"status": RUNNING, "updated_at": 2}
    assert await store.update_session(s.id, Expect("wkr_2", 1), change, None) is None
    assert await store.update_session(s.id, Expect("wkr_1", 0), change, None) is None
    assert await store.update_session(s.id, Expect("wkr_1", 1, (RUNNING,)), change, None) is None
    ev = SessionEvent(session_id=s.id, at=2, kind="status", status=RUNNING, worker_id="wkr_1")
    updated = await store.update_session(s.id, Expect("wkr_1", claimed.lease_epoch), change, ev)
    assert updated is not None and updated.status == RUNNING
    assert [e.status for e in await store.session_events(s.id)] == [PENDING, CLAIMED, RUNNING]


async def test_failed_fenced_update_writes_no_event(store: Store) -> None:
    s = session()
    await add(store, s)
    ev = SessionEvent(session_id=s.id, at=2, kind="status", status=RUNNING)
    assert await store.update_session(s.id, Expect("wkr_x", 5), {"status": RUNNING}, ev) is None
    assert [e.status for e in await store.session_events(s.id)] == [PENDING]


async def test_inserting_an_existing_session_id_is_a_duplicate(store: Store) -> None:
    s = session()
    await add(store, s)
    with pytest.raises(DuplicateKey):
        await add(store, replace(s, prompt="again"))
    assert (await store.get_session(s.id)) == s
    assert len(await store.session_events(s.id)) == 1


async def test_claim_session_by_id(store: Store) -> None:
    s = session()
    await add(store, s)
    assert await store.claim_session(s.id, "elsewhere", "wkr_1", now=1) is None
    got = await store.claim_session(s.id, "q", "wkr_1", now=1)
    assert got is not None and got.worker_id == "wkr_1" and got.lease_epoch == 1
    assert await store.claim_session(s.id, "q", "wkr_2", now=2) is None


async def test_worker_heartbeat_and_end(store: Store) -> None:
    await store.insert_worker(worker(heartbeat=10))
    touched = await store.touch_worker("wkr_1", now=20, active_count=2)
    assert touched is not None and (touched.last_heartbeat_at, touched.active_count) == (20, 2)
    assert await store.silent_workers(cutoff=20) == []
    assert await store.silent_workers(cutoff=21) == ["wkr_1"]
    assert await store.end_worker("wkr_1", "dead", now=30)
    assert not await store.end_worker("wkr_1", "dead", now=31)
    assert await store.touch_worker("wkr_1", now=40, active_count=0) is None
    assert await store.touch_worker("wkr_nobody", now=40, active_count=0) is None


async def test_live_sessions_and_counts(store: Store) -> None:
    await add(store, *[session() for _ in range(3)])
    claimed = await store.claim_next("q", "wkr_1", 2, now=1)
    assert {s.id for s in await store.live_sessions_of("wkr_1")} == {c.id for c in claimed}
    assert await store.count_live_sessions("wkr_1") == 2
    assert await store.count_pending("q") == 1


async def test_expired_leases(store: Store) -> None:
    await add(store, session(), session())
    await store.claim_next("q", "w", 1, now=1, lease_expires_at=100)
    await store.claim_next("q", "w", 1, now=1, lease_expires_at=300)
    assert [s.lease_expires_at for s in await store.expired_leases(now=200)] == [100]


async def test_list_sessions_filters_and_pages_newest_first(store: Store) -> None:
    await add(
        store,
        *[session(id=f"sess_{i:02d}", work_type="qa" if i % 2 else "research") for i in range(7)],
    )
    page = await store.list_sessions(SessionFilter(limit=3))
    assert [s.id for s in page] == ["sess_06", "sess_05", "sess_04"]
    page2 = await store.list_sessions(SessionFilter(limit=3, before_id=page[-1].id))
    assert [s.id for s in page2] == ["sess_03", "sess_02", "sess_01"]
    qa = await store.list_sessions(SessionFilter(work_type="qa"))
    assert [s.id for s in qa] == ["sess_05", "sess_03", "sess_01"]


async def test_settings_first_writer_wins(store: Store) -> None:
    assert await store.get_setting("k") is None
    assert await store.put_setting_if_absent("k", "one") == "one"
    assert await store.put_setting_if_absent("k", "two") == "one"
    assert await store.get_setting("k") == "one"


async def test_api_keys_and_m2m_clients(store: Store) -> None:
    token = ApiKeyRecord(
        id="reg_1",
        org_id=DEFAULT_ORG,
        key_type=REGISTRATION_KEY,
        token_hash="h" * 64,
        key_prefix="rsp_live_ab12",
        created_at=1,
        projects=["p"],
        scopes=["worker:register"],
    )
    await store.insert_api_key(token)
    assert await store.find_api_key("h" * 64) == token
    assert token.kind == "rsp" and token.project == "p"
    assert await store.revoke_api_key("reg_1", now=5)
    assert not await store.revoke_api_key("reg_1", now=6)
    revoked = await store.get_api_key("reg_1")
    assert revoked is not None and revoked.revoked_at == 5 and not revoked.usable_at(6)
    assert [t.id for t in await store.list_api_keys(DEFAULT_ORG, REGISTRATION_KEY)] == ["reg_1"]
    assert await store.list_api_keys("org_other") == []
    client = M2MClientRecord(
        id="m2m_1", org_id=DEFAULT_ORG, name="ci", secret_hash="s" * 64, created_at=2
    )
    await store.insert_m2m_client(client)
    assert await store.get_m2m_client("m2m_1") == client
    assert await store.revoke_m2m_client("m2m_1", now=7)
    assert await store.revoked_credential_ids() == {"reg_1", "m2m_1"}


async def test_organisations(store: Store) -> None:
    (default,) = await store.list_orgs()  # made by the migration
    assert (default.id, default.slug) == (DEFAULT_ORG, "default")
    await store.insert_org(OrgRecord(id="org_a", slug="acme", name="Acme", created_at=3))
    with pytest.raises(DuplicateKey):
        await store.insert_org(OrgRecord(id="org_b", slug="acme", name="Other", created_at=4))
    assert await store.get_org("acme") == await store.get_org("org_a")
    assert [o.slug for o in await store.list_orgs()] == ["acme", "default"]


@pytest.mark.parametrize("bad", ["mysql://x/y", "redis://x"])
def test_unsupported_urls_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        SqlStore(bad)


async def test_concurrent_polls_of_one_worker_never_exceed_its_capacity(store: Store) -> None:
    # A misbehaving client (or a retry racing its original) polls one worker many times at
    # once: together the polls may claim no more than the worker's free capacity.
    await store.insert_worker(worker(capacity=2))
    await add(store, *[session(queued_at=i) for i in range(40)])
    for round_ in range(5):
        polls = await asyncio.gather(*(poll(store, "wkr_1", now=10 + round_) for _ in range(16)))
        claimed = [sid for ids in polls for sid in ids or []]
        live = [
            s
            for s in await store.list_sessions(SessionFilter(worker_id="wkr_1"))
            if s.status in LIVE_STATUSES
        ]
        assert len(claimed) == len(set(claimed)) == len(live) == 2
        for s in live:  # free the slots for the next round
            await store.update_session(
                s.id,
                Expect("wkr_1", s.lease_epoch, LIVE_STATUSES),
                {"status": "completed", "ended_at": 1},
                None,
            )
