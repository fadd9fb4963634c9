"""The repositories, credential sources and batch work part of the store contract (GitStore),
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from shopfloor.store import Store
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.git_records import (
    BATCH_COMPLETED,
    BATCH_LEASED,
    BATCH_QUEUED,
    BatchItemRecord,
    GitSourceRecord,
    RepositoryRecord,
)

SCAN = "code-survival-scan"


def item(n: int, org: str = "org_a", project: str | None = None) -> BatchItemRecord:
    return BatchItemRecord(
        id=f"bat_{n:04d}",
        org_id=org,
        kind=SCAN,
        capability=SCAN,
        payload={"n": n},
        status=BATCH_QUEUED,
        created_at=n,
        project=project,
    )


async def test_repositories_are_unique_per_organisation(store: Store) -> None:
    repo = RepositoryRecord(
        "repo_1", "org_a", "https://github.com/a/b", "github.com/a/b", "github", 1
    )
    await store.insert_repository(repo)
    with pytest.raises(DuplicateKey):
        await store.insert_repository(RepositoryRecord(**{**repo.__dict__, "id": "repo_2"}))
    await store.insert_repository(
        RepositoryRecord(**{**repo.__dict__, "id": "repo_3", "org_id": "org_b"})
    )
    assert [r.id for r in await store.list_repositories("org_a", ["github.com/a/b"])] == ["repo_1"]
    assert await store.list_repositories("org_a", ["github.com/x/y"]) == []
    assert await store.delete_repository("repo_1")
    assert not await store.delete_repository("repo_1")


async def test_one_default_source_per_organisation_and_deleting_a_source_unlinks_it(
    store: Store,
) -> None:
    def source(sid: str, org: str = "org_a") -> GitSourceRecord:
        return GitSourceRecord(sid, org, "static", sid, "sealed", 1, org_default=True)

    await store.insert_git_source(source("gcs_1"))
    await store.insert_git_source(source("gcs_2"))
    await store.insert_git_source(source("gcs_3", "org_b"))
    defaults = {s.id: s.org_default for s in await store.list_git_sources("org_a")}
    assert defaults == {"gcs_1": False, "gcs_2": True}
    assert (await store.get_git_source("gcs_3")).org_default  # type: ignore[union-attr]
    repo = RepositoryRecord("repo_1", "org_a", "u", "h/a/b", "generic", 1, source_id="gcs_2")
    await store.insert_repository(repo)
    await store.record_git_source_error("gcs_2", "GitHub API answered 401", 5)
    failed = await store.get_git_source("gcs_2")
    assert failed is not None and (failed.last_error, failed.last_error_at) == (
        "GitHub API answered 401",
        5,
    )
    assert await store.delete_git_source("gcs_2")
    assert (await store.get_repository("repo_1")).source_id is None  # type: ignore[union-attr]


async def test_batch_items_are_leased_by_capability_organisation_and_project(
    store: Store,
) -> None:
    for record in (item(1), item(2, project="p1"), item(3, project="p2"), item(4, "org_b")):
        await store.insert_batch_item(record)
    other = await store.lease_batch_items("org_a", ["another"], None, "w1", 10, 100, 5)
    assert other == []
    leased = await store.lease_batch_items("org_a", [SCAN], ["p1"], "w1", 10, 100, 5)
    assert [(i.id, i.status, i.worker_id, i.lease_epoch, i.attempts) for i in leased] == [
        ("bat_0001", BATCH_LEASED, "w1", 1, 1),
        ("bat_0002", BATCH_LEASED, "w1", 1, 1),
    ]
    rest = await store.lease_batch_items("org_a", [SCAN], None, "w2", 10, 100, 5)
    assert [i.id for i in rest] == ["bat_0003"]  # org_b's item is not org_a's worker's
    assert await store.lease_batch_items("org_a", [SCAN], None, "w2", 50, 100, 5) == []


async def test_an_expired_lease_is_taken_again_and_the_late_holder_is_fenced(
    store: Store,
) -> None:
    await store.insert_batch_item(item(1))
    (first,) = await store.lease_batch_items("org_a", [SCAN], None, "w1", 10, 100, 5)
    assert await store.lease_batch_items("org_a", [SCAN], None, "w2", 99, 200, 5) == []
    (again,) = await store.lease_batch_items("org_a", [SCAN], None, "w2", 101, 300, 5)
    assert (again.worker_id, again.lease_epoch, again.attempts) == ("w2", 2, 2)
    late = await store.finish_batch_item(
        first.id, "w1", first.lease_epoch, 150, BATCH_COMPLETED, {}
    )
    assert late is None
    wrong_epoch = await store.finish_batch_item(first.id, "w2", 1, 150, BATCH_COMPLETED, {})
    assert wrong_epoch is None
    done = await store.finish_batch_item(first.id, "w2", 2, 150, BATCH_COMPLETED, {"found": 3})
    assert done is not None and (done.status, done.result, done.finished_at) == (
        BATCH_COMPLETED,
        {"found": 3},
        150,
    )
    assert await store.finish_batch_item(first.id, "w2", 2, 160, BATCH_COMPLETED, {}) is None
    assert await store.lease_batch_items("org_a", [SCAN], None, "w3", 10_000, 20_000, 5) == []


async def test_racing_leases_hand_each_item_to_one_worker(store: Store) -> None:
    for n in range(40):
        await store.insert_batch_item(item(n))
    rounds = await asyncio.gather(
        *(
            store.lease_batch_items("org_a", [SCAN], None, f"w{w}", 10, 100, 5)
            for w in range(12)
            for _ in range(2)
        )
    )
    taken = [i.id for batch in rounds for i in batch]
    assert sorted(taken) == sorted(f"bat_{n:04d}" for n in range(40))  # each once, none lost
    listed = await store.list_batch_items("org_a", BATCH_LEASED, 100)
    assert len(listed) == 40


async def test_a_lease_takes_at_most_its_limit_oldest_first(store: Store) -> None:
    for n in range(7):
        await store.insert_batch_item(item(n))
    first = await store.lease_batch_items("org_a", [SCAN], None, "w1", 10, 100, 5)
    second = await store.lease_batch_items("org_a", [SCAN], None, "w2", 10, 100, 5)
    assert [i.id for i in first] == [f"bat_{n:04d}" for n in range(5)]
    assert [i.id for i in second] == ["bat_0005", "bat_0006"]
