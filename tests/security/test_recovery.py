"""Slow recovery (issue 16, item 8): what a worker loses is free again soon. An expired lease
is requeued a few milliseconds after it runs out, not at the next reaper pass; a worker silent
for three heartbeat intervals is dead; a heartbeat whose activeCount is below what the worker
holds starts a reconciliation that requeues the sessions it lost."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from shopfloor.api.state import Services
from shopfloor.clock import ManualClock
from tests.agentfactory.helpers import WORKER, enqueue, operator_view, poll, register, status
from tests.conftest import ADMIN_KEY, Backend
from tests.processes.server import server_env, start_server, stop_cleanly

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def heartbeat(api: httpx.AsyncClient, worker_id: str, active: int) -> None:
    reply = await api.post(
        f"/api/workers/{worker_id}/heartbeat", headers=WORKER, json={"activeCount": active}
    )
    assert reply.status_code == 200, reply.text


def services(api: httpx.AsyncClient) -> Services:
    found: Services = api.app.state.services  # type: ignore[attr-defined]
    return found


async def test_sessions_a_worker_no_longer_reports_go_back_to_the_queue(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    lost, kept = (await enqueue(api))["sessionId"], (await enqueue(api))["sessionId"]
    wid = await register(api, capacity=2)
    await poll(api, wid)
    for sid in (lost, kept):
        assert (await status(api, sid, wid, "running")).status_code == 200
    await heartbeat(api, wid, 2)
    clock.advance(10)
    await heartbeat(api, wid, 1)  # one agent died without a word: reconciliation starts
    clock.advance(30)
    activity = {"type": "thought", "content": "still here"}
    reply = await api.post(
        f"/api/sessions/{kept}/activity",
        headers=WORKER,
        json={"workerId": wid, "activity": activity},
    )
    assert reply.status_code == 200
    clock.advance(30)
    await heartbeat(api, wid, 1)  # 60 s in: within the grace (the 90 s worker TTL)
    assert (await operator_view(api, lost))["status"] == "running"
    clock.advance(31)
    await heartbeat(api, wid, 1)
    lost_view = await operator_view(api, lost)
    assert lost_view["status"] == "pending" and lost_view["workerId"] is None
    assert lost_view["history"][-1]["reason"].startswith(
        f"worker {wid} reported 1 active sessions while holding 2"
    )
    assert (await operator_view(api, kept))["status"] == "running"


async def test_a_heartbeat_that_catches_up_ends_the_reconciliation(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    sid = (await enqueue(api))["sessionId"]
    wid = await register(api)
    await poll(api, wid)
    await status(api, sid, wid, "running")
    await heartbeat(api, wid, 0)  # a heartbeat that raced the start of the session
    clock.advance(30)
    await heartbeat(api, wid, 1)
    clock.advance(100)
    await heartbeat(api, wid, 1)
    assert (await operator_view(api, sid))["status"] == "running"


async def test_a_claimed_session_is_left_to_its_claim_lease(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A pre-claimed session the worker has not started is not its to count yet."""
    sid = (await enqueue(api))["sessionId"]
    wid = await register(api)
    await poll(api, wid)
    await heartbeat(api, wid, 0)
    clock.advance(100)
    await heartbeat(api, wid, 0)
    assert (await operator_view(api, sid))["status"] == "claimed"


async def test_the_reaper_wakes_when_the_next_lease_runs_out(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    dispatcher = services(api).dispatcher
    assert await dispatcher.next_reap_at() is None
    await enqueue(api)
    wid = await register(api)
    registered_at = clock.now_ms()
    assert await dispatcher.next_reap_at() == registered_at + 90_000  # its TTL
    await poll(api, wid)  # a claim lease of 120 s
    clock.advance(50)
    await heartbeat(api, wid, 0)
    assert await dispatcher.next_reap_at() == registered_at + 120_000


def test_an_expired_veryfront_lease_is_claimable_at_once(tmp_path: Path) -> None:
    """With passes 60 s apart, the run whose 5 s lease ran out is claimed by another worker
    within a second of expiring: the reaper woke for that lease."""
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    env = server_env(backend, tmp_path / "data", SHOPFLOOR_REAP_INTERVAL_SECONDS="60")
    server = start_server(env, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            workers = [
                http.post(
                    "/agent-workers/projects/demo/workers",
                    json={"implementation_kind": "k", "worker_key": key},
                    headers=ADMIN,
                ).json()["worker"]["id"]
                for key in ("first", "second")
            ]
            run = http.post(
                "/runs",
                json={
                    "project_id": "demo",
                    "input": "hi",
                    "kind": "agent",
                    "request": {"implementation_kind": "k", "agent_id": "a"},
                },
                headers=ADMIN,
            ).json()["run_id"]
            first = http.post(
                f"/agent-workers/workers/{workers[0]}/claim",
                json={"lease_duration_seconds": 5},
                headers=ADMIN,
            ).json()["run"]
            assert first["run_id"] == run
            expires = time.monotonic() + 5
            time.sleep(5)
            while True:
                second = http.post(
                    f"/agent-workers/workers/{workers[1]}/claim",
                    json={"lease_duration_seconds": 5},
                    headers=ADMIN,
                ).json()["run"]
                if second is not None or time.monotonic() > expires + 3:
                    break
                time.sleep(0.05)
            assert second is not None and second["run_id"] == run
            assert time.monotonic() - expires < 1.5
    finally:
        stop_cleanly(server)
