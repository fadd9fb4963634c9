"""Session claims and ends in the audit log (issue 21), on both databases: the database writes
them to the audit outbox in the transaction of the status change, for every protocol's claim
and end path; the appender moves them into the organisation's chain exactly once, in order,
however many appenders run; SHOPFLOOR_AUDIT_SESSIONS=false records none. And the fast
canonical JSON the chain hashes is RFC 8785's."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import rfc8785
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.clock import ManualClock
from shopfloor.service import audit_chain
from shopfloor.service.audit import AuditLog
from shopfloor.store import SqlStore, open_store
from shopfloor.store import schema as t
from shopfloor.store.integration_records import AuditQuery
from tests.agentfactory.helpers import ADMIN, WORKER, enqueue, poll, register, status
from tests.conftest import Backend, make_settings, running_app
from tests.environments.helpers import Q, new_environment
from tests.environments.helpers import enqueue as env_enqueue
from tests.veryfront import helpers as vf

LIFECYCLE = ("session.claimed", "session.ended")


def audit_of(api: httpx.AsyncClient) -> AuditLog:
    log: AuditLog = api.app.state.services.audit  # type: ignore[attr-defined]
    return log


async def lifecycle(api: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    reply = await api.get("/api/audit", headers=ADMIN, params={"entityId": session_id})
    assert reply.status_code == 200, reply.text
    return [e for e in reply.json()["events"] if e["eventType"] in LIFECYCLE]


async def outbox_count(store: SqlStore) -> int:
    async with store.db.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(t.audit_outbox)))


def store_of(api: httpx.AsyncClient) -> SqlStore:
    store = api.app.state.services.dispatcher.store  # type: ignore[attr-defined]
    assert isinstance(store, SqlStore)
    return store


async def test_agentfactory_claims_and_ends_are_chained(api: httpx.AsyncClient) -> None:
    worker_id = await register(api)
    done, failed = (await enqueue(api))["sessionId"], (await enqueue(api))["sessionId"]
    claimed = [w["sessionId"] for w in (await poll(api, worker_id))["work"]]
    assert sorted(claimed) == sorted([done, failed])
    assert (await status(api, done, worker_id, "running")).status_code == 200
    assert (await status(api, done, worker_id, "completed")).status_code == 200
    assert (await status(api, failed, worker_id, "failed")).status_code == 200
    # Two creations, two claims, two ends: in the outbox, not yet in the chain.
    assert await outbox_count(store_of(api)) == 6
    chained = await store_of(api).audit_entries(AuditQuery("org_default", limit=100))
    assert [e.event_type for e in chained] == ["worker.registered"]

    assert await audit_of(api).append_all_pending() == 6
    assert await outbox_count(store_of(api)) == 0
    entries = await lifecycle(api, done)
    assert [e["eventType"] for e in entries] == list(LIFECYCLE)
    assert [e["payload"]["status"] for e in entries] == ["claimed", "completed"]
    assert {e["actorId"] for e in entries} == {worker_id}
    assert {e["actorType"] for e in entries} == {"worker"}
    assert entries[0]["payload"]["leaseEpoch"] == 1
    assert entries[1]["sequenceNumber"] > entries[0]["sequenceNumber"]
    ended = (await lifecycle(api, failed))[1]
    assert ended["payload"]["status"] == "failed"
    assert await audit_of(api).append_all_pending() == 0  # each fact once
    verdict = await api.post("/api/audit/verify", headers=ADMIN)
    assert verdict.json()["valid"] is True, verdict.text


async def test_a_requeue_and_a_transfer_are_not_claims(api: httpx.AsyncClient) -> None:
    first, second = await register(api), await register(api)
    session = (await enqueue(api))["sessionId"]
    await poll(api, first)
    nacked = await api.post(
        f"/api/sessions/{session}/nack", json={"workerId": first}, headers=WORKER
    )
    assert nacked.status_code == 200, nacked.text
    await poll(api, second)  # claimed again: a second claim
    await audit_of(api).append_all_pending()
    entries = await lifecycle(api, session)
    assert [(e["eventType"], e["actorId"]) for e in entries] == [
        ("session.claimed", first),
        ("session.claimed", second),
    ]
    assert [e["payload"]["leaseEpoch"] for e in entries] == [1, 2]


async def test_environment_work_acknowledged_and_stopped_is_chained(
    api: httpx.AsyncClient,
) -> None:
    env = await new_environment(api)
    session = await env_enqueue(api, env)
    headers = {**ADMIN, "Worker-ID": "env-worker"}
    item = (await api.get(f"{Q}/{env}/work/poll", headers=headers)).json()
    assert (await api.post(f"{Q}/{env}/work/{item['id']}/ack", headers=headers)).status_code == 200
    stop = await api.post(f"{Q}/{env}/work/{item['id']}/stop", json={"force": True}, headers=ADMIN)
    assert stop.status_code == 200, stop.text
    await audit_of(api).append_all_pending()
    entries = await lifecycle(api, session)
    assert [e["eventType"] for e in entries] == list(LIFECYCLE)
    assert entries[0]["actorId"] == "env-worker"
    assert entries[1]["payload"]["status"] == "stopped"


async def test_veryfront_workers_registered_and_runs_claimed_and_completed_are_chained(
    api: httpx.AsyncClient,
) -> None:
    worker_id, token = await vf.register(api, "vf-key")
    await vf.admit(api, "vf-key")
    run = await vf.claim(api, worker_id, token)
    assert run is not None
    done = await api.post(
        f"/runs/{run['run_id']}/complete", headers=ADMIN, json={"status": "completed"}
    )
    assert done.status_code == 200, done.text
    await audit_of(api).append_all_pending()
    reply = await api.get("/api/audit/events", headers=ADMIN, params={"type": "session.claimed"})
    claims = reply.json()["events"]
    assert len(claims) == 1 and claims[0]["actorId"] == worker_id
    entries = await lifecycle(api, claims[0]["sessionId"])
    assert [e["payload"]["status"] for e in entries] == ["claimed", "completed"]
    registered = await api.get("/api/audit", headers=ADMIN, params={"entityId": worker_id})
    [entry] = registered.json()["events"]
    assert (entry["eventType"], entry["actorId"]) == ("worker.registered", "admin")
    assert entry["payload"]["protocol"] == "veryfront"


async def test_appenders_racing_append_each_fact_once(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    """Several appenders at once over one outbox, with small batches: on PostgreSQL from two
    stores (two processes' pools), on SQLite from one. The chain stays one chain: sequence
    1..n without a gap, every fact once."""
    async with running_app(make_settings(backend, tmp_path), clock) as api:
        worker_id = await register(api, capacity=40)
        sessions = [(await enqueue(api))["sessionId"] for _ in range(30)]
        while (await poll(api, worker_id))["work"]:  # five a poll
            pass
        for s in sessions[:20]:
            await status(api, s, worker_id, "completed")
        keys = audit_of(api).keys
        count = 2 if backend.name == "postgres" else 1
        stores = [await open_store(backend.url, schema=backend.schema) for _ in range(count)]
        try:
            logs = [AuditLog(s, clock, keys) for s in stores]

            async def drain(log: AuditLog) -> int:
                total = 0
                while (n := await log.append_pending("org_default", limit=3)) or (
                    await outbox_count(store_of(api))
                ):
                    total += n
                    await asyncio.sleep(0)
                return total

            appended = await asyncio.gather(*(drain(logs[i % count]) for i in range(4)))
            assert sum(appended) == 80  # 30 created, 30 claimed, 20 ended
            exported = await logs[0].export("org_default")
            assert [e["sequenceNumber"] for e in exported] == list(range(1, len(exported) + 1))
            facts = [(e["eventType"], e["entityId"]) for e in exported]
            facts = [f for f in facts if f[0] in ("session.created", *LIFECYCLE)]
            assert len(facts) == len(set(facts)) == 80
            assert (await logs[-1].verify("org_default")).valid
        finally:
            for s in stores:
                await s.close()


async def test_session_audit_can_be_turned_off(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    off = make_settings(backend, tmp_path, audit_sessions=False)
    async with running_app(off, clock) as api:
        worker_id = await register(api)
        session = (await enqueue(api))["sessionId"]
        await poll(api, worker_id)
        await status(api, session, worker_id, "completed")
        assert await outbox_count(store_of(api)) == 1  # its creation, recorded either way
        assert await audit_of(api).append_all_pending() == 1
        assert await lifecycle(api, session) == []
    async with running_app(make_settings(backend, tmp_path), clock) as api:  # on again
        worker_id = await register(api)
        session = (await enqueue(api))["sessionId"]
        await poll(api, worker_id)
        assert await audit_of(api).append_all_pending() == 2
        assert [e["eventType"] for e in await lifecycle(api, session)] == ["session.claimed"]


# -- the canonical JSON --

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_json)
def test_canonical_is_rfc8785(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except Exception:  # lone surrogates: refused by both
        try:
            audit_chain.canonical(value)
        except Exception:
            return
        raise AssertionError(f"{value!r}: accepted, but RFC 8785 refuses it") from None
    assert audit_chain.canonical(value) == expected
    assert json.loads(expected) == json.loads(audit_chain.canonical(value))


async def test_an_append_that_dies_midway_leaves_the_facts_for_the_next(
    api: httpx.AsyncClient,
) -> None:
    """The facts leave the outbox only with their entries: an appender that fails after
    building half a batch (a crash, as far as the transaction knows) changes nothing."""
    worker_id = await register(api)
    for _ in range(3):
        await enqueue(api)
    await poll(api, worker_id)
    store = store_of(api)
    real = audit_of(api)

    def dies(facts: list[Any], sequence: int, prev_hash: str) -> list[Any]:
        raise RuntimeError("the process died here")

    try:
        await store.append_audit_facts("org_default", 10, dies)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the failing build was not run")
    assert await outbox_count(store) == 6  # three created, three claimed
    before = await store.audit_entries(AuditQuery("org_default", limit=100))
    assert [e.event_type for e in before] == ["worker.registered"]
    assert await real.append_all_pending() == 6
    assert await outbox_count(store) == 0
    assert (await real.verify("org_default")).valid
