"""Store contract for the session channel, run against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from shopfloor.store import Store
from shopfloor.store.records import (
    PARKED,
    PENDING,
    STOPPED,
    Expect,
    InboxMessage,
    IssueRecord,
    RecoveryPacket,
    SessionEvent,
)
from shopfloor.store.tenancy_records import DEFAULT_ORG
from tests.store.test_contract import add, created, session, worker


async def test_fenced_events_need_the_current_owner_and_epoch(store: Store) -> None:
    s = session()
    await add(store, s)
    await store.insert_worker(worker("wkr_a"))
    [claimed] = await store.claim_next("q", "wkr_a", 1, now=1)
    ev = SessionEvent(session_id=s.id, at=2, kind="activity", data={"content": "x"})
    stored = await store.append_session_event(ev, Expect("wkr_a", claimed.lease_epoch))
    assert stored is not None and stored.id is not None
    assert await store.append_session_event(ev, Expect("wkr_b", claimed.lease_epoch)) is None
    stale = Expect("wkr_a", claimed.lease_epoch - 1)
    assert await store.append_session_event(ev, stale) is None
    after = await store.session_events_after(s.id, 0)
    assert [e.kind for e in after] == ["status", "status", "activity"]
    assert await store.session_events_after(s.id, stored.id) == []


async def test_issue_lock_parks_supersedes_and_promotes(store: Store) -> None:
    holder = session(issue_id="iss", work_type="development", queued_at=10)
    got = await store.insert_session_with_issue_lock(holder, created(holder), 1000)
    assert got.status == PENDING
    old = session(issue_id="iss", work_type="qa", priority=2)
    assert (await store.insert_session_with_issue_lock(old, created(old), 1000)).status == PARKED
    new = session(issue_id="iss", work_type="qa", priority=2)
    assert (await store.insert_session_with_issue_lock(new, created(new), 1000)).status == PARKED
    assert (await store.get_session(old.id)).status == STOPPED  # type: ignore[union-attr]
    claimed = await store.claim_next("q", "w", 5, now=20)
    assert [c.id for c in claimed] == [holder.id]  # parked sessions are not claimable
    lock = await store.get_issue_lock(DEFAULT_ORG, "iss")
    assert lock is not None and lock.session_id == holder.id
    # Only the holder's release promotes.
    assert await store.release_issue_lock(DEFAULT_ORG, "iss", new.id, 30, 2000) is None
    promoted = await store.release_issue_lock(DEFAULT_ORG, "iss", holder.id, 30, 2000)
    assert promoted is not None and promoted.id == new.id and promoted.status == PENDING
    lock = await store.get_issue_lock(DEFAULT_ORG, "iss")
    assert lock is not None and (lock.session_id, lock.expires_at) == (new.id, 2000)


async def test_stale_issue_locks_expire_unless_refreshed(store: Store) -> None:
    holder = session(issue_id="iss2")
    await store.insert_session_with_issue_lock(holder, created(holder), 100)
    assert await store.stale_issue_locks(now=50) == []
    assert await store.refresh_issue_lock(DEFAULT_ORG, "iss2", holder.id, None, 50, 200)
    assert await store.refresh_issue_lock(DEFAULT_ORG, "iss2", "sess_other", None, 50, 300) is False
    assert await store.stale_issue_locks(now=150) == []
    assert (
        await store.release_issue_lock(DEFAULT_ORG, "iss2", holder.id, 150, 999, stale_only=True)
        is None
    )
    assert await store.get_issue_lock(DEFAULT_ORG, "iss2") is not None
    assert [lk.session_id for lk in await store.stale_issue_locks(now=250)] == [holder.id]
    await store.release_issue_lock(DEFAULT_ORG, "iss2", holder.id, 250, 999, stale_only=True)
    assert await store.get_issue_lock(DEFAULT_ORG, "iss2") is None


async def test_issue_locks_are_per_organisation(store: Store) -> None:
    """Two organisations' sessions on the same issue id each take their own lock; a release
    promotes only parked work of the releasing session's organisation."""
    a1 = session(issue_id="ENG-1", work_type="development", org_id="org_a")
    b1 = session(issue_id="ENG-1", work_type="development", org_id="org_b")
    b2 = session(issue_id="ENG-1", work_type="qa", org_id="org_b")
    a2 = session(issue_id="ENG-1", work_type="qa", org_id="org_a")
    statuses = [
        (await store.insert_session_with_issue_lock(s, created(s), 1000)).status
        for s in (a1, b1, b2, a2)
    ]
    assert statuses == [PENDING, PENDING, PARKED, PARKED]
    lock_a = await store.get_issue_lock("org_a", "ENG-1")
    lock_b = await store.get_issue_lock("org_b", "ENG-1")
    assert lock_a is not None and (lock_a.session_id, lock_a.org_id) == (a1.id, "org_a")
    assert lock_b is not None and (lock_b.session_id, lock_b.org_id) == (b1.id, "org_b")
    assert await store.get_issue_lock(DEFAULT_ORG, "ENG-1") is None
    # Another organisation's holder can neither refresh nor release this one's lock.
    assert await store.refresh_issue_lock("org_a", "ENG-1", b1.id, None, 5, 2000) is False
    assert await store.release_issue_lock("org_a", "ENG-1", b1.id, 5, 2000) is None
    promoted = await store.release_issue_lock("org_b", "ENG-1", b1.id, 5, 2000)
    assert promoted is not None and promoted.id == b2.id
    assert (await store.get_session(a2.id)).status == PARKED  # type: ignore[union-attr]
    lock_a = await store.get_issue_lock("org_a", "ENG-1")
    assert lock_a is not None and lock_a.session_id == a1.id
    for org, title in (("org_a", "A's"), ("org_b", "B's")):
        await store.upsert_issue(
            IssueRecord(
                id="ENG-1", identifier="ENG-1", created_at=0, updated_at=0, title=title, org_id=org
            )
        )
    found_a = await store.find_issue("org_a", "ENG-1")
    assert found_a is not None and (found_a.title, found_a.org_id) == ("A's", "org_a")
    changed = await store.update_issue("org_b", "ENG-1", {"state_name": "Started"})
    assert changed is not None and changed.title == "B's"
    found_a = await store.find_issue("org_a", "ENG-1")
    assert found_a is not None and found_a.state_name is None
    assert await store.find_issue(DEFAULT_ORG, "ENG-1") is None


async def test_concurrent_sessions_for_one_issue_get_one_lock(store: Store) -> None:
    batch = [session(issue_id="race", work_type=f"w{i}") for i in range(6)]
    results = await asyncio.gather(
        *(store.insert_session_with_issue_lock(s, created(s), 1000) for s in batch)
    )
    assert sorted(r.status for r in results) == [PARKED] * 5 + [PENDING]


async def test_inbox_delivers_to_the_holder_until_acked_then_archives(store: Store) -> None:
    s = session()
    await add(store, s)
    await store.insert_worker(worker("wkr_a"))
    for i, (kind, lane) in enumerate([("nudge", "normal"), ("directive", "urgent")]):
        await store.insert_inbox_message(
            InboxMessage(
                id=f"m{i}", session_id=s.id, type=kind, lane=lane, payload="p", created_at=i
            )
        )
    assert await store.deliver_inbox("wkr_a", now=5) == []  # not held yet
    await store.claim_next("q", "wkr_a", 1, now=6)
    first = await store.deliver_inbox("wkr_a", now=7)
    assert [m.id for m in first] == ["m1", "m0"]  # urgent lane first
    assert (await store.ack_inbox_message(s.id, "m1", 8)) is not None
    assert await store.ack_inbox_message(s.id, "nope", 8) is None
    again = await store.deliver_inbox("wkr_a", now=9)
    assert [(m.id, m.delivery_count, m.delivered_at) for m in again] == [("m0", 2, 7)]
    assert await store.release_session_holds(s.id, 10) == (2, 0)
    assert await store.deliver_inbox("wkr_a", now=11) == []


async def test_file_reservations(store: Store) -> None:
    reserved, conflicts = await store.reserve_files("repo", "s1", ["b", "a"], 0, 100)
    assert reserved == ["b", "a"] and conflicts == []
    reserved, conflicts = await store.reserve_files("repo", "s2", ["a", "c"], 10, 110)
    assert reserved == ["c"] and [(c.path, c.session_id) for c in conflicts] == [("a", "s1")]
    assert [c.path for c in await store.file_conflicts("repo", "s2", ["a", "b", "c"], 10)] == [
        "a",
        "b",
    ]
    assert await store.file_conflicts("other", "s2", ["a"], 10) == []
    reserved, _ = await store.reserve_files("repo", "s2", ["a"], 100, 200)  # s1's lapsed
    assert reserved == ["a"]
    assert await store.release_files("repo", "s1", ["a", "b"], None) == 1
    assert await store.release_session_files("s2", None) == 2


async def test_a_caller_naming_no_worker_never_releases_a_named_workers_files(
    store: Store,
) -> None:
    await store.reserve_files("repo", "s1", ["mine"], 0, 100, worker_id="wkr_b")
    await store.reserve_files("repo", "s1", ["anon"], 0, 100)
    assert await store.release_session_files("s1", None) == 1  # only "anon"
    assert await store.release_files("repo", "s1", ["mine"], None) == 0
    assert await store.release_files("repo", "s1", ["mine"], "wkr_other") == 0
    assert [c.path for c in await store.file_conflicts("repo", "s9", ["mine"], 1)] == ["mine"]
    assert await store.release_session_files("s1", "wkr_b") == 1
    # A renewal passes the reservation to whoever renews it (the session's new holder).
    await store.reserve_files("repo", "s1", ["p"], 0, 100, worker_id="wkr_b")
    await store.reserve_files("repo", "s1", ["p"], 1, 101, worker_id="wkr_c")
    assert await store.release_files("repo", "s1", ["p"], "wkr_b") == 0
    assert await store.release_files("repo", "s1", ["p"], "wkr_c") == 1


async def test_a_sessions_end_archives_its_inbox_and_releases_its_files(store: Store) -> None:
    await store.reserve_files("repo", "s1", ["a", "b"], 0, 100)
    await store.reserve_files("repo", "s2", ["c"], 0, 100)
    for i in range(3):
        message = InboxMessage(
            id=f"m{i}", session_id="s1", type="nudge", lane="normal", payload="p", created_at=i
        )
        await store.insert_inbox_message(message)
    assert await store.release_session_holds("s1", now=5) == (3, 2)
    assert {m.archived_at for m in await store.list_inbox("s1")} == {5}
    assert [c.path for c in await store.file_conflicts("repo", "s9", ["a", "b", "c"], 6)] == ["c"]
    assert await store.release_session_holds("s1", now=7) == (0, 0)


async def test_issue_records_and_recovery_packets(store: Store) -> None:
    issue = IssueRecord(
        id="iss",
        identifier="ENG-1",
        created_at=0,
        updated_at=0,
        state_name="Backlog",
        labels=["bug"],
    )
    await store.upsert_issue(issue)
    again = IssueRecord(
        id="iss", identifier="ENG-1", created_at=5, updated_at=5, title="T", state_name="Icebox"
    )
    merged = await store.upsert_issue(again)
    assert (merged.title, merged.state_name, merged.labels, merged.created_at) == (
        "T",
        "Icebox",
        ["bug"],
        0,
    )
    assert (await store.find_issue(DEFAULT_ORG, "ENG-1")) == merged
    updated = await store.update_issue(
        DEFAULT_ORG, "iss", {"assignee": None, "state_name": "Started"}
    )
    assert updated is not None and updated.state_name == "Started"
    assert await store.find_issue(DEFAULT_ORG, "ENG-404") is None
    for attempt in (2, 1):
        await store.insert_recovery_packet(
            RecoveryPacket(
                id=f"rcv_{attempt}",
                session_id="s",
                created_at=attempt,
                attempt=attempt,
                data={"n": attempt},
            )
        )
    assert [p.data["n"] for p in await store.recovery_packets("s")] == [1, 2]


async def test_a_terminal_report_by_the_holder_ends_the_session_in_one_step(store: Store) -> None:
    s = session()
    await add(store, s)
    (held,) = await store.claim_next("q", "wkr_a", 1, now=1)
    await store.reserve_files("repo", s.id, ["a"], 1, 100)
    message = InboxMessage(
        id="m0", session_id=s.id, type="nudge", lane="normal", payload="p", created_at=1
    )
    await store.insert_inbox_message(message)

    def ending(worker_id: str) -> SessionEvent:
        return SessionEvent(
            session_id=s.id, at=5, kind="status", status="completed", worker_id=worker_id
        )

    changes = {"status": "completed", "updated_at": 5}
    # Not the holder: refused, nothing written.
    assert await store.end_held_session(s.id, "wkr_b", changes, ending("wkr_b")) is None
    assert (await store.get_session(s.id)) == held
    assert [c.path for c in await store.file_conflicts("repo", "other", ["a"], 2)] == ["a"]
    # The holder: ended, with its history event, inbox archived and files released.
    ended = await store.end_held_session(s.id, "wkr_a", changes, ending("wkr_a"))
    assert ended is not None and (ended.status, ended.updated_at) == ("completed", 5)
    assert [e.status for e in await store.session_events(s.id)][-1] == "completed"
    assert {m.archived_at for m in await store.list_inbox(s.id)} == {5}
    assert await store.file_conflicts("repo", "other", ["a"], 6) == []
    # Settled: a second ending, even by the holder, changes nothing.
    events = await store.session_events(s.id)
    again = {"status": "failed", "updated_at": 9}
    assert await store.end_held_session(s.id, "wkr_a", again, ending("wkr_a")) is None
    assert (await store.get_session(s.id)) == ended
    assert await store.session_events(s.id) == events
