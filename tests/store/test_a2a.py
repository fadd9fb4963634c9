"""The A2A registry in the store, on both databases: agents per organisation (one URL once per
organisation), updates and deletes bounded to the organisation, dispatches newest first with
their filters and cursor."""

from __future__ import annotations

import pytest

from shopfloor.store import Store
from shopfloor.store.a2a_records import A2aAgentRecord, A2aDispatchRecord, DispatchFilter
from shopfloor.store.errors import DuplicateKey


def agent(agent_id: str, org: str = "org_a", url: str = "http://127.0.0.1:1") -> A2aAgentRecord:
    card = {"name": "Ops", "url": url + "/rpc", "skills": [{"id": "deploy"}]}
    return A2aAgentRecord(agent_id, org, url, "ops", "external", card, True, 1, 1, 1)


def dispatch(n: int, org: str = "org_a", status: str = "completed") -> A2aDispatchRecord:
    return A2aDispatchRecord(
        id=f"dsp_{n:04d}",
        org_id=org,
        agent_id="a1",
        agent_name="Ops",
        skill_id="deploy",
        status=status,
        dispatch_type="transparent",
        input_text=f"input {n}",
        dispatched_at=n * 1000,
    )


async def test_agents_belong_to_one_organisation(store: Store) -> None:
    await store.insert_a2a_agent(agent("a1"))
    await store.insert_a2a_agent(agent("b1", org="org_b"))
    with pytest.raises(DuplicateKey):
        await store.insert_a2a_agent(agent("a2"))
    assert [a.id for a in await store.list_a2a_agents("org_a")] == ["a1"]
    assert await store.get_a2a_agent("org_b", "a1") is None
    assert await store.update_a2a_agent("org_b", "a1", {"trust_level": "trusted"}) is None
    assert not await store.delete_a2a_agent("org_b", "a1")
    found = await store.get_a2a_agent("org_a", "a1")
    assert found is not None and found.trust_level == "external" and found.card["skills"]
    updated = await store.update_a2a_agent("org_a", "a1", {"reachable": False})
    assert updated is not None and updated.reachable is False
    assert await store.delete_a2a_agent("org_a", "a1")
    assert await store.list_a2a_agents("org_a") == []


async def test_dispatches_newest_first_with_filters(store: Store) -> None:
    for n in range(1, 6):
        await store.insert_a2a_dispatch(dispatch(n, status="failed" if n == 3 else "completed"))
    await store.insert_a2a_dispatch(dispatch(9, org="org_b"))
    everything = await store.list_a2a_dispatches(DispatchFilter("org_a"))
    assert [d.id for d in everything] == [f"dsp_{n:04d}" for n in (5, 4, 3, 2, 1)]
    failed = await store.list_a2a_dispatches(DispatchFilter("org_a", status="failed"))
    assert [d.id for d in failed] == ["dsp_0003"]
    window = DispatchFilter("org_a", since=2000, until=4000)
    assert [d.id for d in await store.list_a2a_dispatches(window)] == [
        "dsp_0004",
        "dsp_0003",
        "dsp_0002",
    ]
    page = DispatchFilter("org_a", before_id="dsp_0003", limit=1)
    assert [d.id for d in await store.list_a2a_dispatches(page)] == ["dsp_0002"]
    await store.update_a2a_dispatch("dsp_0001", {"output_text": "done", "task_id": "t"})
    last = (await store.list_a2a_dispatches(DispatchFilter("org_a", until=1000)))[0]
    assert last.output_text == "done" and last.task_id == "t"
    assert [d.id for d in await store.list_a2a_dispatches(DispatchFilter("org_c"))] == []
