"""The managed-agent part of the store contract (ManagedStore), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from shopfloor.ids import new_session_id
from shopfloor.store import Store
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.managed_records import (
    TURN_MODEL,
    TURN_TOOLS,
    AgentRecord,
    AgentVersionRecord,
    EventQuery,
    ManagedFilter,
    ManagedSessionRecord,
)
from shopfloor.store.records import PENDING, STOPPED, Expect, SessionEvent, SessionRecord

ENV = "env_" + "0" * 32


def pair(
    created_at: int = 0, env: str = ENV, agent_id: str = "agent_1"
) -> tuple[SessionRecord, SessionEvent, ManagedSessionRecord]:
    sid = new_session_id()  # time-ordered, like the server's
    session = SessionRecord(
        id=sid,
        queue=env,
        status=PENDING,
        priority=3,
        queued_at=created_at,
        created_at=created_at,
        updated_at=created_at,
    )
    created = SessionEvent(session_id=sid, at=created_at, kind="status", status=PENDING)
    managed = ManagedSessionRecord(
        session_id=sid,
        environment_id=env,
        agent={"id": agent_id},
        agent_id=agent_id,
        agent_version=1,
        status="idle",
        created_at=created_at,
        updated_at=created_at,
    )
    return session, created, managed


def event(sid: str, kind: str, at: int = 0, **data: object) -> SessionEvent:
    return SessionEvent(session_id=sid, at=at, kind=kind, data=dict(data))


async def test_agent_versions_advance_by_compare_and_set(store: Store) -> None:
    head = AgentRecord(id="agent_a", version=1, created_at=1, updated_at=1, project="env_x")
    await store.insert_agent(head, AgentVersionRecord("agent_a", 1, {"name": "one"}, 1))
    with pytest.raises(DuplicateKey):
        await store.insert_agent(head, AgentVersionRecord("agent_a", 1, {"name": "dup"}, 1))
    bumped = await store.add_agent_version("agent_a", 1, {"name": "two"}, 5)
    assert bumped is not None and (bumped.version, bumped.updated_at) == (2, 5)
    # A writer that read version 1 loses: nothing changes.
    assert await store.add_agent_version("agent_a", 1, {"name": "lost"}, 6) is None
    assert (await store.get_agent_version("agent_a", 1)).definition == {"name": "one"}  # type: ignore[union-attr]
    assert (await store.get_agent_version("agent_a", 2)).definition == {"name": "two"}  # type: ignore[union-attr]
    assert await store.get_agent_version("agent_a", 3) is None
    versions = await store.list_agent_versions("agent_a", after_version=None, limit=10)
    assert [v.version for v in versions] == [1, 2]
    archived = await store.archive_agent("agent_a", 9)
    assert archived is not None and archived.archived_at == 9
    assert await store.add_agent_version("agent_a", 2, {"name": "x"}, 10) is None
    assert await store.archive_agent("agent_missing", 9) is None


async def test_agents_list_by_project_and_archive(store: Store) -> None:
    for i, project in enumerate(["env_a", "env_b", None, "env_a"]):
        aid = f"agent_{i}"
        await store.insert_agent(
            AgentRecord(id=aid, version=1, created_at=i, updated_at=i, project=project),
            AgentVersionRecord(aid, 1, {}, i),
        )
    await store.archive_agent("agent_3", 10)
    mine = await store.list_agents(project="env_a", include_archived=False, after_id=None, limit=9)
    assert [a.id for a in mine] == ["agent_0"]
    everything = await store.list_agents(
        project=None, include_archived=True, after_id="agent_0", limit=2
    )
    assert [a.id for a in everything] == ["agent_1", "agent_2"]


async def test_managed_session_is_a_session_row_with_its_events(store: Store) -> None:
    session, created, managed = pair()
    sid = session.id
    stored = await store.insert_managed_session(
        session, created, managed, [event(sid, "user.message", id="sevt_1")]
    )
    assert [e.kind for e in stored] == ["user.message"] and stored[0].id
    assert (await store.get_session(sid)).status == PENDING  # type: ignore[union-attr]
    got = await store.get_managed_session(sid)
    assert got == managed
    with pytest.raises(DuplicateKey):
        await store.insert_managed_session(session, created, managed, [])
    # The managed events are the session's timeline, next to its status history.
    kinds = [e.kind for e in await store.session_events_after(sid)]
    assert kinds == ["status", "user.message"]


async def test_update_is_compare_and_set_on_rev_with_events(store: Store) -> None:
    session, created, managed = pair()
    sid = session.id
    await store.insert_managed_session(session, created, managed, [])
    done = await store.update_managed_session(
        sid, 0, {"turn": TURN_MODEL, "unfed": [{"type": "text", "text": "hi"}]}, [event(sid, "a")]
    )
    assert done is not None
    record, events = done
    assert (record.rev, record.turn, record.unfed) == (
        1,
        TURN_MODEL,
        [{"type": "text", "text": "hi"}],
    )
    assert len(events) == 1 and events[0].id is not None
    # A stale writer changes nothing and appends nothing.
    assert (
        await store.update_managed_session(sid, 0, {"turn": TURN_TOOLS}, [event(sid, "b")]) is None
    )
    assert (await store.get_managed_session(sid)).turn == TURN_MODEL  # type: ignore[union-attr]
    listed = await store.managed_events(sid, EventQuery(kinds=("a", "b")))
    assert [e.kind for e in listed] == ["a"]


async def test_concurrent_writers_of_one_rev_one_wins(store: Store) -> None:
    session, created, managed = pair()
    sid = session.id
    await store.insert_managed_session(session, created, managed, [])
    results = await asyncio.gather(
        *[
            store.update_managed_session(sid, 0, {"title": f"t{i}"}, [event(sid, "x", n=i)])
            for i in range(8)
        ]
    )
    assert sum(r is not None for r in results) == 1
    assert len(await store.managed_events(sid, EventQuery(kinds=("x",)))) == 1


async def test_event_queries_filter_order_and_page(store: Store) -> None:
    session, created, managed = pair()
    sid = session.id
    kinds = ["user.message", "agent.message", "turn.reply", "agent.message", "user.message"]
    await store.insert_managed_session(
        session, created, managed, [event(sid, k, at=i * 10) for i, k in enumerate(kinds)]
    )
    wire = ("user.message", "agent.message")
    asc = await store.managed_events(sid, EventQuery(kinds=wire))
    assert [e.at for e in asc] == [0, 10, 30, 40]
    page = await store.managed_events(sid, EventQuery(kinds=wire, after_id=asc[1].id, limit=1))
    assert [e.at for e in page] == [30]
    desc = await store.managed_events(sid, EventQuery(kinds=wire, descending=True, limit=2))
    assert [e.at for e in desc] == [40, 30]
    older = await store.managed_events(
        sid, EventQuery(kinds=wire, descending=True, after_id=desc[-1].id)
    )
    assert [e.at for e in older] == [10, 0]
    timed = await store.managed_events(sid, EventQuery(kinds=wire, at_after=0, at_before=40))
    assert [e.at for e in timed] == [10, 30]
    assert await store.last_event_id(sid, wire) == asc[-1].id
    assert await store.last_event_id(sid, ("none",)) == 0


async def test_list_filters_scope_and_pages(store: Store) -> None:
    ids = []
    for i, env in enumerate([ENV, ENV, "env_" + "1" * 32, ENV]):
        session, created, managed = pair(created_at=i, env=env, agent_id=f"agent_{i % 2}")
        await store.insert_managed_session(session, created, managed, [])
        ids.append(session.id)
    newest_first = await store.list_managed_sessions(ManagedFilter(environment_id=ENV))
    assert [m.session_id for m in newest_first] == [ids[3], ids[1], ids[0]]
    page = await store.list_managed_sessions(
        ManagedFilter(environment_id=ENV, descending=False, after_id=ids[0], limit=1)
    )
    assert [m.session_id for m in page] == [ids[1]]
    by_agent = await store.list_managed_sessions(ManagedFilter(agent_id="agent_1"))
    assert [m.session_id for m in by_agent] == [ids[3], ids[1]]
    archived = await store.get_managed_session(ids[0])
    assert archived is not None
    await store.update_managed_session(ids[0], 0, {"archived_at": 5, "status": "terminated"})
    assert ids[0] not in [m.session_id for m in await store.list_managed_sessions(ManagedFilter())]
    with_archived = await store.list_managed_sessions(
        ManagedFilter(include_archived=True, statuses=("terminated",))
    )
    assert [m.session_id for m in with_archived] == [ids[0]]
    timed = await store.list_managed_sessions(ManagedFilter(created_after=0, created_before=3))
    assert [m.session_id for m in timed] == [ids[2], ids[1]]


async def test_due_and_stranded_turns(store: Store) -> None:
    due, created, managed = pair()
    await store.insert_managed_session(due, created, managed, [])
    await store.update_managed_session(due.id, 0, {"turn": TURN_MODEL})
    held, created, managed = pair()
    await store.insert_managed_session(held, created, managed, [])
    await store.update_managed_session(
        held.id, 0, {"turn": TURN_MODEL, "turn_owner": "p1", "turn_expires_at": 100}
    )
    assert await store.due_turns(50) == [due.id]
    assert sorted(await store.due_turns(101)) == sorted([due.id, held.id])
    # A turn waiting for tools whose work item ended is stranded; one whose item lives is not.
    waiting, created, managed = pair()
    await store.insert_managed_session(waiting, created, managed, [])
    await store.update_managed_session(waiting.id, 0, {"turn": TURN_TOOLS})
    assert await store.stranded_turns() == []
    s = await store.get_session(waiting.id)
    assert s is not None
    await store.update_session(
        s.id, Expect(None, s.lease_epoch, (PENDING,)), {"status": STOPPED}, None
    )
    assert await store.stranded_turns() == [waiting.id]
