"""Liveness: a silent worker is declared dead, its sessions go back to the queue, and its late
writes are refused. Time is a ManualClock; the reaper pass is called directly."""

from __future__ import annotations

import httpx

from shopfloor.api.state import Services
from shopfloor.clock import ManualClock
from shopfloor.service.dispatch import ReapReport
from tests.agentfactory.helpers import WORKER, enqueue, operator_view, poll, register, status


async def reap(api: httpx.AsyncClient) -> ReapReport:
    services: Services = api.app.state.services  # type: ignore[attr-defined]
    return await services.dispatcher.reap()


async def heartbeat(api: httpx.AsyncClient, worker_id: str) -> httpx.Response:
    return await api.post(
        f"/api/workers/{worker_id}/heartbeat", headers=WORKER, json={"activeCount": 1}
    )


async def test_silent_worker_is_declared_dead_and_its_sessions_requeued(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    s = await enqueue(api, workType="development")  # priority 3
    wid = await register(api)
    await poll(api, wid)
    await status(
        api, s["sessionId"], wid, "running", providerSessionId="prov-1", worktreePath="/wt/x"
    )
    clock.advance(89)
    assert (await reap(api)).dead_workers == []
    clock.advance(2)  # 91 s of silence > the default TTL, three 30 s heartbeat intervals
    report = await reap(api)
    assert report.dead_workers == [wid] and report.requeued == [s["sessionId"]]
    view = await operator_view(api, s["sessionId"])
    assert view["status"] == "pending" and view["workerId"] is None
    assert view["priority"] == 2  # one higher than before
    assert view["providerSessionId"] is None  # never resume a crashed provider session
    assert view["history"][-1]["reason"] == f"worker {wid} sent no heartbeat for 90s"
    assert view["history"][-1]["workerId"] == wid


async def test_heartbeats_keep_a_worker_alive(api: httpx.AsyncClient, clock: ManualClock) -> None:
    s = await enqueue(api)
    wid = await register(api)
    await poll(api, wid)
    await status(api, s["sessionId"], wid, "running")
    for _ in range(5):
        clock.advance(80)
        assert (await heartbeat(api, wid)).status_code == 200
        assert await reap(api) == ReapReport()
    assert (await operator_view(api, s["sessionId"]))["status"] == "running"


async def test_late_writes_from_a_dead_worker_are_refused(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    s = await enqueue(api)
    dead = await register(api)
    await poll(api, dead)
    await status(api, s["sessionId"], dead, "running")
    clock.advance(301)
    await reap(api)
    # Requeued but not yet claimed: the dead worker still may not write.
    r = await status(api, s["sessionId"], dead, "completed")
    assert r.status_code == 403
    successor = await register(api)
    (item,) = (await poll(api, successor))["work"]
    assert item["sessionId"] == s["sessionId"] and item["priority"] == 2
    # Claimed by the successor: the dead worker's writes, transfer and heartbeat all fail.
    assert (await status(api, s["sessionId"], dead, "completed")).status_code == 403
    r = await api.post(
        f"/api/sessions/{s['sessionId']}/transfer-ownership",
        headers=WORKER,
        json={"newWorkerId": dead, "oldWorkerId": dead},
    )
    assert r.json()["transferred"] is False
    assert (await heartbeat(api, dead)).status_code == 404
    assert (await status(api, s["sessionId"], successor, "completed")).status_code == 200
    view = await operator_view(api, s["sessionId"])
    assert view["status"] == "completed" and view["workerId"] == successor


async def test_unstarted_claim_returns_to_the_queue_when_its_lease_expires(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    s = await enqueue(api)
    wid = await register(api)
    await poll(api, wid)  # the reply is "lost": the worker never reports running
    clock.advance(60)
    assert (await heartbeat(api, wid)).status_code == 200
    assert (await reap(api)).requeued == []
    clock.advance(61)  # past the 120 s claim lease, worker still alive
    assert (await heartbeat(api, wid)).status_code == 200
    assert (await reap(api)).requeued == [s["sessionId"]]
    view = await operator_view(api, s["sessionId"])
    assert view["status"] == "pending" and view["history"][-1]["reason"] == "lease expired"
    assert (await status(api, s["sessionId"], wid, "running")).status_code == 403


async def test_a_running_session_is_not_expired_by_the_claim_lease(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    s = await enqueue(api)
    wid = await register(api)
    await poll(api, wid)
    await status(api, s["sessionId"], wid, "running")
    for _ in range(4):
        clock.advance(80)
        await heartbeat(api, wid)
        assert (await reap(api)).requeued == []
    assert (await operator_view(api, s["sessionId"]))["status"] == "running"
