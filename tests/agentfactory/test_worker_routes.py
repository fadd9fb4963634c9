"""Every AgentFactory worker route, with the exact bodies the TS `af-worker` depends on."""

from __future__ import annotations

import httpx
import pytest

from shopfloor.clock import ManualClock
from tests.agentfactory.helpers import (
    ADMIN,
    WORKER,
    enqueue,
    operator_view,
    poll,
    register,
    status,
)

NOT_FOUND_WORKER = {"error": "Not Found", "message": "Worker not found"}
NOT_FOUND_SESSION = {"error": "Not Found", "message": "Session not found"}
NOT_OWNER = {"error": "Forbidden", "message": "Session is owned by another worker"}


async def test_register_returns_201_with_wkr_id_and_ms_intervals(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/api/workers/register",
        headers=WORKER,
        json={"hostname": "h", "capacity": 3, "version": "1.0.0", "projects": ["A"]},
    )
    assert r.status_code == 201
    body = r.json()
    # The client slices workerId for logs and feeds the intervals to setInterval (ms).
    assert body["workerId"].startswith("wkr_") and len(body["workerId"]) == 20
    assert body["heartbeatInterval"] == 30000 and body["pollInterval"] == 5000
    assert body["runtimeToken"] is None and body["runtimeTokenExpiresAt"] is None


async def test_unauthorized_body_is_exact(api: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        r = await api.post(
            "/api/workers/register", json={"hostname": "h", "capacity": 1}, headers=headers
        )
        assert r.status_code == 401
        assert r.json() == {"error": "Unauthorized", "message": "Invalid or missing API key"}


async def test_config_lists_no_projects_for_the_static_key(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/config", headers=WORKER)
    assert r.status_code == 200 and r.json() == {"projects": []}


async def test_heartbeat_acknowledges_with_server_time_and_queue_depth(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    wid = await register(api)
    await enqueue(api)
    await enqueue(api)
    clock.advance(7)
    r = await api.post(
        f"/api/workers/{wid}/heartbeat",
        headers=WORKER,
        json={"activeCount": 0, "load": {"cpu": 0.4, "memory": 0.6}},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["acknowledged"] is True and body["pendingWorkCount"] == 2
    assert body["serverTime"].endswith("Z")
    workers = (await api.get("/api/v1/workers", headers=ADMIN)).json()
    assert workers[0]["lastHeartbeatAt"] == body["serverTime"]


async def test_unknown_worker_gets_the_exact_not_found_body(api: httpx.AsyncClient) -> None:
    # The client re-registers only when a 404 body contains "Worker not found".
    hb = await api.post(
        "/api/workers/wkr_0000000000000000/heartbeat", headers=WORKER, json={"activeCount": 0}
    )
    pl = await api.get("/api/workers/wkr_0000000000000000/poll", headers=WORKER)
    for r in (hb, pl):
        assert r.status_code == 404 and r.json() == NOT_FOUND_WORKER


async def test_poll_shape_when_empty(api: httpx.AsyncClient) -> None:
    wid = await register(api)
    assert await poll(api, wid) == {
        "work": [],
        "inboxMessages": {},
        "hasInboxMessages": False,
        "preClaimed": False,
        "claimedSessionIds": [],
    }


async def test_poll_pre_claims_in_priority_then_fifo_order(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    research = await enqueue(api, workType="research", issueIdentifier="ENG-1")
    clock.advance(1)
    dev = await enqueue(api, workType="development", issueIdentifier="ENG-2")
    clock.advance(1)
    qa = await enqueue(api, workType="qa", issueIdentifier="ENG-3")
    clock.advance(1)
    dev2 = await enqueue(api, workType="development", issueIdentifier="ENG-4")
    assert [s["priority"] for s in (research, dev, qa, dev2)] == [4, 3, 2, 3]
    wid = await register(api, capacity=10)
    reply = await poll(api, wid)
    order = [qa, dev, dev2, research]
    assert [w["sessionId"] for w in reply["work"]] == [s["sessionId"] for s in order]
    assert reply["preClaimed"] is True
    assert reply["claimedSessionIds"] == [s["sessionId"] for s in order]
    item = reply["work"][0]
    assert item["issueIdentifier"] == "ENG-3" and item["workType"] == "qa"
    assert isinstance(item["queuedAt"], int) and "providerSessionId" not in item
    assert (await operator_view(api, qa["sessionId"]))["status"] == "claimed"


async def test_poll_never_exceeds_free_capacity_or_five(api: httpx.AsyncClient) -> None:
    for _ in range(8):
        await enqueue(api)
    small = await register(api, capacity=2)
    assert len((await poll(api, small))["work"]) == 2
    assert (await poll(api, small))["work"] == []  # both slots still held
    big = await register(api, capacity=50)
    assert len((await poll(api, big))["work"]) == 5
    assert len((await poll(api, big))["work"]) == 1


async def test_finishing_a_session_frees_its_slot(api: httpx.AsyncClient) -> None:
    await enqueue(api)
    await enqueue(api)
    wid = await register(api, capacity=1)
    (first,) = (await poll(api, wid))["work"]
    assert (await poll(api, wid))["work"] == []
    assert (await status(api, first["sessionId"], wid, "completed")).status_code == 200
    assert len((await poll(api, wid))["work"]) == 1


async def test_poll_honours_the_worker_project_filter(api: httpx.AsyncClient) -> None:
    a = await enqueue(api, projectName="A")
    b = await enqueue(api, projectName="B")
    wid = await register(api, projects=["B"])
    assert [w["sessionId"] for w in (await poll(api, wid))["work"]] == [b["sessionId"]]
    anyone = await register(api)
    assert [w["sessionId"] for w in (await poll(api, anyone))["work"]] == [a["sessionId"]]


async def test_legacy_claim_is_idempotent_for_the_holder(api: httpx.AsyncClient) -> None:
    s = await enqueue(api)
    wid = await register(api)
    other = await register(api)
    (item,) = (await poll(api, wid))["work"]
    # A 0.7.x client always calls /claim after a poll: it must succeed for the holder.
    r = await api.post(
        f"/api/sessions/{item['sessionId']}/claim", headers=WORKER, json={"workerId": wid}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["claimed"] is True and body["session"]["workerId"] == wid
    assert body["work"]["sessionId"] == s["sessionId"]
    r = await api.post(
        f"/api/sessions/{item['sessionId']}/claim", headers=WORKER, json={"workerId": other}
    )
    assert r.json() == {"claimed": False, "reason": "Work item not available or already claimed"}


async def test_legacy_claim_of_a_pending_session(api: httpx.AsyncClient) -> None:
    s = await enqueue(api, projectName="A")
    outsider = await register(api, projects=["B"])
    r = await api.post(
        f"/api/sessions/{s['sessionId']}/claim", headers=WORKER, json={"workerId": outsider}
    )
    assert r.json() == {"claimed": False, "reason": "Worker not authorized for project A"}
    wid = await register(api)
    r = await api.post(
        f"/api/sessions/{s['sessionId']}/claim", headers=WORKER, json={"workerId": wid}
    )
    assert r.json()["claimed"] is True
    r = await api.post("/api/sessions/sess_missing/claim", headers=WORKER, json={"workerId": wid})
    assert r.json() == {"claimed": False, "reason": "Session state expired, work item dropped"}


async def test_status_reports_follow_the_worker_call_order(api: httpx.AsyncClient) -> None:
    s = await enqueue(api)
    wid = await register(api)
    await poll(api, wid)
    sid = s["sessionId"]
    for extra in (
        {},
        {"providerSessionId": "prov-1", "worktreePath": "/wt/ENG-1"},
        {"providerSessionId": "prov-1"},
    ):
        r = await status(api, sid, wid, "running", **extra)
        assert r.status_code == 200 and r.json()["updated"] is True
    assert (await status(api, sid, wid, "finalizing")).status_code == 200
    r = await status(
        api,
        sid,
        wid,
        "completed",
        totalCostUsd=0.25,
        inputTokens=100,
        outputTokens=50,
        providerSessionId="prov-1",
        worktreePath="/wt/ENG-1",
    )
    assert r.status_code == 200
    session = r.json()["session"]
    assert session["status"] == "completed" and session["totalCostUsd"] == 0.25
    assert session["providerSessionId"] == "prov-1" and session["worktreePath"] == "/wt/ENG-1"
    # Repeats of a settled status are accepted and change nothing.
    assert (await status(api, sid, wid, "completed")).status_code == 200
    view = await operator_view(api, sid)
    assert [h["status"] for h in view["history"]] == [
        "pending",
        "claimed",
        "running",
        "finalizing",
        "completed",
    ]
    assert (view["inputTokens"], view["outputTokens"]) == (100, 50)


async def test_failed_report_keeps_the_error_message(api: httpx.AsyncClient) -> None:
    s = await enqueue(api)
    wid = await register(api)
    await poll(api, wid)
    await status(api, s["sessionId"], wid, "finalizing")
    r = await status(api, s["sessionId"], wid, "failed", error={"message": "agent crashed"})
    assert r.status_code == 200
    view = await operator_view(api, s["sessionId"])
    assert view["status"] == "failed" and view["error"] == "agent crashed"
    assert view["history"][-1]["reason"] == "agent crashed"


async def test_a_settled_session_cannot_be_reopened(api: httpx.AsyncClient) -> None:
    s = await enqueue(api)
    wid = await register(api)
    await poll(api, wid)
    await status(api, s["sessionId"], wid, "completed")
    r = await status(api, s["sessionId"], wid, "running")
    assert r.status_code == 409 and r.json()["error"] == "Conflict"
    assert (await operator_view(api, s["sessionId"]))["status"] == "completed"


async def test_status_of_another_workers_session_is_refused(api: httpx.AsyncClient) -> None:
    s = await enqueue(api)
    holder = await register(api)
    intruder = await register(api)
    await poll(api, holder)
    r = await status(api, s["sessionId"], intruder, "completed")
    assert r.status_code == 403 and r.json() == NOT_OWNER
    assert (await operator_view(api, s["sessionId"]))["status"] == "claimed"
    r = await status(api, "sess_missing", holder, "running")
    assert r.status_code == 404 and r.json() == NOT_FOUND_SESSION


async def test_get_status_returns_the_raw_session_state(api: httpx.AsyncClient) -> None:
    s = await enqueue(
        api, workType="research", projectName="P", agentId="agent-1", issueIdentifier="ENG-1"
    )
    wid = await register(api)
    await poll(api, wid)
    r = await api.get(f"/api/sessions/{s['sessionId']}/status", headers=WORKER)
    assert r.status_code == 200
    state = r.json()
    assert state["status"] == "claimed" and state["workerId"] == wid
    assert state["issueId"] == "ENG-1" and state["workType"] == "research"
    assert state["projectName"] == "P" and state["agentId"] == "agent-1"
    assert state["providerSessionId"] is None and state["worktreePath"] == ""
    assert isinstance(state["createdAt"], int) and isinstance(state["updatedAt"], int)
    r = await api.get("/api/sessions/sess_missing/status", headers=WORKER)
    assert r.status_code == 404 and r.json() == NOT_FOUND_SESSION


async def test_nack_returns_the_session_to_its_place(api: httpx.AsyncClient) -> None:
    s = await enqueue(api)
    wid = await register(api)
    (item,) = (await poll(api, wid))["work"]
    r = await api.post(
        f"/api/sessions/{s['sessionId']}/nack",
        headers=WORKER,
        json={"workerId": wid, "reason": "capacity", "work": item},
    )
    assert r.status_code == 200
    assert r.json() == {"nacked": True, "sessionId": s["sessionId"], "requeued": True}
    view = await operator_view(api, s["sessionId"])
    assert view["status"] == "pending" and view["workerId"] is None
    assert view["priority"] == s["priority"] and view["queuedAt"] == s["queuedAt"]
    again = await register(api)
    assert [w["sessionId"] for w in (await poll(api, again))["work"]] == [s["sessionId"]]


async def test_deregister_requeues_held_sessions_at_once(api: httpx.AsyncClient) -> None:
    s1 = await enqueue(api)
    s2 = await enqueue(api)
    wid = await register(api)
    await poll(api, wid)
    await status(api, s1["sessionId"], wid, "running", providerSessionId="prov-9")
    r = await api.delete(f"/api/workers/{wid}", headers=WORKER)
    assert r.status_code == 200
    body = r.json()
    assert body["deregistered"] is True
    assert sorted(body["unclaimedSessions"]) == sorted([s1["sessionId"], s2["sessionId"]])
    view = await operator_view(api, s1["sessionId"])
    assert view["status"] == "pending" and view["providerSessionId"] is None
    assert view["history"][-1]["reason"] == f"worker {wid} deregistered"
    # The worker is gone: heartbeats now ask it to re-register.
    hb = await api.post(f"/api/workers/{wid}/heartbeat", headers=WORKER, json={"activeCount": 0})
    assert hb.status_code == 404 and hb.json() == NOT_FOUND_WORKER
    r = await api.delete(f"/api/workers/{wid}", headers=WORKER)
    assert r.status_code == 404 and r.json() == NOT_FOUND_WORKER


async def test_transfer_ownership_moves_the_lease(api: httpx.AsyncClient) -> None:
    s = await enqueue(api)
    old = await register(api)
    await poll(api, old)
    await status(api, s["sessionId"], old, "running")
    new = await register(api)
    r = await api.post(
        f"/api/sessions/{s['sessionId']}/transfer-ownership",
        headers=WORKER,
        json={"newWorkerId": new, "oldWorkerId": old},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["transferred"] is True and body["session"]["workerId"] == new
    # The old id can no longer write; the new one can.
    assert (await status(api, s["sessionId"], old, "completed")).status_code == 403
    assert (await status(api, s["sessionId"], new, "completed")).status_code == 200


async def test_transfer_refusals(api: httpx.AsyncClient) -> None:
    s = await enqueue(api)
    holder = await register(api)
    await poll(api, holder)
    new = await register(api)
    r = await api.post(
        f"/api/sessions/{s['sessionId']}/transfer-ownership",
        headers=WORKER,
        json={"newWorkerId": new, "oldWorkerId": "wkr_someoneelse00"},
    )
    assert r.json() == {
        "transferred": False,
        "reason": f"Session owned by different worker: {holder}",
    }
    r = await api.post(
        "/api/sessions/sess_missing/transfer-ownership",
        headers=WORKER,
        json={"newWorkerId": new, "oldWorkerId": holder},
    )
    assert r.json() == {"transferred": False, "reason": "Session not found"}
    assert (await operator_view(api, s["sessionId"]))["workerId"] == holder


@pytest.mark.parametrize("path", ["/api/workers/wkr_x/poll", "/api/sessions/s/status"])
async def test_get_routes_need_a_worker_credential(api: httpx.AsyncClient, path: str) -> None:
    r = await api.get(path)
    assert r.status_code == 401
