"""Agent memory in the store, on both databases: ranked full-text recall (FTS5 / tsvector),
bounded to one organisation and project; forgetting is bounded the same way."""

from __future__ import annotations

import itertools

from shopfloor.store import Store
from shopfloor.store.memory_records import MemoryQuery, MemoryRecord

_ids = itertools.count(1)


def memory(content: str, org: str = "org_a", project: str = "web", **kw: object) -> MemoryRecord:
    n = next(_ids)
    values: dict[str, object] = {
        "id": f"mem_s_{n}",
        "org_id": org,
        "project": project,
        "scope": "",
        "session_id": "sess_1",
        "agent_id": None,
        "content": content,
        "tags": [],
        "source": "explicit",
        "type": "pattern_discovered",
        "created_at": n,
    }
    values.update(kw)
    return MemoryRecord(**values)  # type: ignore[arg-type]


def query(*words: str, org: str = "org_a", project: str = "web", **kw: object) -> MemoryQuery:
    return MemoryQuery(org_id=org, project=project, words=list(words), **kw)  # type: ignore[arg-type]


async def test_recall_ranks_the_best_match_first_and_stems(store: Store) -> None:
    await store.insert_memory(memory("The deploy script lives in ops/deploy.sh"))
    best = memory("Deploying needs the deploy key; deploys run from CI only")
    await store.insert_memory(best)
    await store.insert_memory(memory("Tests use a real PostgreSQL"))
    hits = await store.search_memories(query("deploys"))
    assert len(hits) == 2 and hits[0].score >= hits[1].score > 0
    assert hits[0].memory == best


async def test_words_inside_paths_and_names_are_found(store: Store) -> None:
    found = memory("Run it with ops/deploy.sh or make release.prod")
    await store.insert_memory(found)
    for word in ("deploy", "prod", "ops"):
        assert [h.memory.id for h in await store.search_memories(query(word))] == [found.id]


async def test_recall_never_crosses_organisation_or_project(store: Store) -> None:
    ours = memory("the secret launch codes are in the vault")
    await store.insert_memory(ours)
    await store.insert_memory(memory("the secret launch codes of B", org="org_b"))
    await store.insert_memory(memory("the secret launch codes of api", project="api"))
    hits = await store.search_memories(query("secret", "launch"))
    assert [h.memory.id for h in hits] == [ours.id]
    assert [h.memory.org_id for h in await store.search_memories(query("secret", org="org_b"))] == [
        "org_b"
    ]


async def test_scope_and_limit_narrow_the_recall(store: Store) -> None:
    for n in range(5):
        await store.insert_memory(memory(f"flaky test number {n}", scope="repo-x"))
    await store.insert_memory(memory("flaky test elsewhere", scope="repo-y"))
    assert len(await store.search_memories(query("flaky", limit=3))) == 3
    scoped = await store.search_memories(query("flaky", scope="repo-y"))
    assert [h.memory.content for h in scoped] == ["flaky test elsewhere"]
    assert await store.search_memories(query()) == []


async def test_forget_only_within_the_tenant(store: Store) -> None:
    kept = memory("remember the alamo", org="org_a")
    await store.insert_memory(kept)
    assert not await store.delete_memory("org_b", "web", kept.id)
    assert not await store.delete_memory("org_a", "api", kept.id)
    assert [h.memory.id for h in await store.search_memories(query("alamo"))] == [kept.id]
    assert await store.delete_memory("org_a", "web", kept.id)
    assert await store.search_memories(query("alamo")) == []
    assert not await store.delete_memory("org_a", "web", kept.id)
