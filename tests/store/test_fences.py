"""The conditional writes that make a reaper safe on every replica at once (both backends)."""

from __future__ import annotations

from shopfloor.store import Store
from shopfloor.store.records import PENDING, RUNNING, Expect
from tests.store.test_contract import add, session, worker


async def test_requeue_of_an_expired_lease_loses_to_a_renewal(store: Store) -> None:
    s = session()
    await add(store, s)
    (claimed,) = await store.claim_next("q", "wkr_1", 1, now=1, lease_expires_at=100)
    requeue = {"status": PENDING, "worker_id": None, "lease_expires_at": None}
    # The reaper read the lease as expired at t=150, but a renewal moved it to 300 since.
    renewed = await store.update_session(
        s.id, Expect("wkr_1", claimed.lease_epoch), {"lease_expires_at": 300}, None
    )
    assert renewed is not None
    fence = Expect("wkr_1", claimed.lease_epoch, (), lease_expired_by=150)
    assert await store.update_session(s.id, fence, requeue, None) is None
    late = Expect("wkr_1", claimed.lease_epoch, (), lease_expired_by=301)
    assert await store.update_session(s.id, late, requeue, None) is not None


async def test_a_cleared_lease_never_counts_as_expired(store: Store) -> None:
    s = session()
    await add(store, s)
    (claimed,) = await store.claim_next("q", "wkr_1", 1, now=1, lease_expires_at=100)
    running = await store.update_session(
        s.id,
        Expect("wkr_1", claimed.lease_epoch),
        {"status": RUNNING, "lease_expires_at": None},
        None,
    )
    assert running is not None
    fence = Expect("wkr_1", claimed.lease_epoch, (), lease_expired_by=10**15)
    assert await store.update_session(s.id, fence, {"status": PENDING}, None) is None


async def test_a_worker_that_heartbeat_since_the_read_is_not_ended(store: Store) -> None:
    await store.insert_worker(worker(heartbeat=10))
    assert not await store.end_worker("wkr_1", "dead", now=50, silent_since=10)
    assert await store.end_worker("wkr_1", "dead", now=50, silent_since=11)
    assert not await store.end_worker("wkr_1", "dead", now=51, silent_since=11)
