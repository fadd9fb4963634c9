"""The environment work API's rules and every documented status code, on both paths, in
process with a manual clock (leases and reclaim windows without sleeping)."""

from __future__ import annotations

import httpx
import pytest

from shopfloor.clock import ManualClock
from shopfloor.service.dispatch import Dispatcher
from tests.environments.helpers import ADMIN, A, Q, assert_error, enqueue, new_environment, work_id

pytestmark = pytest.mark.parametrize("prefix", [Q, A], ids=["qoder", "anthropic"])

HEADER = {Q: "Worker-ID", A: "Anthropic-Worker-ID"}


def dispatcher(api: httpx.AsyncClient) -> Dispatcher:
    d: Dispatcher = api.app.state.services.dispatcher  # type: ignore[attr-defined]
    return d


def as_worker(prefix: str, worker: str) -> dict[str, str]:
    return {**ADMIN, HEADER[prefix]: worker}


async def poll(api: httpx.AsyncClient, prefix: str, env: str, worker: str, **q: object) -> object:
    r = await api.get(f"{prefix}/{env}/work/poll", params=q, headers=as_worker(prefix, worker))
    assert r.status_code == 200, r.text
    return r.json()


async def acked(api: httpx.AsyncClient, prefix: str, env: str, worker: str = "w1") -> str:
    await enqueue(api, env)
    item = await poll(api, prefix, env, worker)
    assert isinstance(item, dict)
    r = await api.post(f"{prefix}/{env}/work/{item['id']}/ack", headers=as_worker(prefix, worker))
    assert r.status_code == 200, r.text
    wid: str = item["id"]
    return wid


async def beat(
    api: httpx.AsyncClient, prefix: str, env: str, wid: str, **q: object
) -> httpx.Response:
    return await api.post(f"{prefix}/{env}/work/{wid}/heartbeat", params=q, headers=ADMIN)


# -- poll --


async def test_empty_poll_is_200_with_a_json_null_body(api: httpx.AsyncClient, prefix: str) -> None:
    env = await new_environment(api)
    r = await api.get(f"{prefix}/{env}/work/poll", headers=ADMIN)
    assert (r.status_code, r.content, r.headers["content-type"]) == (
        200,
        b"null",
        "application/json",
    )


async def test_poll_delivers_a_session_as_a_queued_work_item(
    api: httpx.AsyncClient, prefix: str
) -> None:
    env = await new_environment(api)
    sid = await enqueue(api, env, metadata={"team": "core"})
    item = await poll(api, prefix, env, "w1")
    assert item == {
        "id": work_id(sid),
        "type": "work",
        "environment_id": env,
        "data": {"type": "session", "id": sid},
        "state": "queued",
        "metadata": {"team": "core"},
        "created_at": item["created_at"],  # type: ignore[index]
        "acknowledged_at": None,
        "started_at": None,
        "latest_heartbeat_at": None,
        "stop_requested_at": None,
        "stopped_at": None,
        "secret": None,
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"block_ms": "0"}, "block_ms"),
        ({"block_ms": "1000"}, "block_ms"),
        ({"block_ms": "soon"}, "block_ms"),
        ({"block_ms": "\u00b2"}, "block_ms"),  # a digit to str.isdigit, not to int(): was a 500
        ({"reclaim_older_than_ms": "-1"}, "reclaim_older_than_ms"),
        ({"reclaim_older_than_ms": "1.5"}, "reclaim_older_than_ms"),
        ({"reclaim_older_than_ms": "-\u00b9"}, "reclaim_older_than_ms"),
    ],
)
async def test_poll_rejects_bad_parameters_naming_them(
    api: httpx.AsyncClient, prefix: str, query: dict[str, str], field: str
) -> None:
    env = await new_environment(api)
    await enqueue(api, env)
    r = await api.get(f"{prefix}/{env}/work/poll", params=query, headers=ADMIN)
    body = assert_error(r, 400, "invalid_request_error")
    assert field in body["error"]["message"]
    # Nothing was delivered by the failed request.
    assert isinstance(await poll(api, prefix, env, "w1"), dict)


async def test_unknown_environment_is_404_with_the_sdk_error_code(
    api: httpx.AsyncClient, prefix: str
) -> None:
    r = await api.get(f"{prefix}/env_{'0' * 32}/work/poll", headers=ADMIN)
    body = assert_error(r, 404, "not_found_error")
    assert body["error"]["details"] == {"error_code": "environment_not_found"}


async def test_unacked_item_is_redelivered_only_after_the_reclaim_window(
    api: httpx.AsyncClient, prefix: str, clock: ManualClock
) -> None:
    env = await new_environment(api)
    sid = await enqueue(api, env)
    assert (await poll(api, prefix, env, "w1"))["id"] == work_id(sid)  # type: ignore[index]
    assert await poll(api, prefix, env, "w2") is None
    clock.advance(4.9)
    assert await poll(api, prefix, env, "w2") is None
    clock.advance(0.1)  # the default reclaim_older_than_ms is 5000
    assert (await poll(api, prefix, env, "w2"))["id"] == work_id(sid)  # type: ignore[index]
    # A poller may choose a shorter window.
    assert (await poll(api, prefix, env, "w3", reclaim_older_than_ms=0))["id"] == work_id(sid)  # type: ignore[index]


# -- ack --


async def test_ack_rules(api: httpx.AsyncClient, prefix: str, clock: ManualClock) -> None:
    env = await new_environment(api)
    sid = await enqueue(api, env)
    wid = work_id(sid)
    await poll(api, prefix, env, "w1")
    url = f"{prefix}/{env}/work/{wid}/ack"
    # Poll stored w1: an ack naming another worker is refused, and says not to retry.
    r = await api.post(url, headers=as_worker(prefix, "w2"))
    assert_error(r, 409, "invalid_request_error")
    assert r.headers["x-should-retry"] == "false"
    r = await api.post(url, headers=as_worker(prefix, "w1"))
    assert r.status_code == 200 and r.json()["state"] == "starting"
    assert r.json()["acknowledged_at"] is not None
    # Acknowledged: gone from the queue, and a repeated ack (also without a Worker-ID, as the
    # anthropic SDK sends it) returns the item unchanged.
    assert await poll(api, prefix, env, "w3", reclaim_older_than_ms=0) is None
    again = await api.post(url, headers=ADMIN)
    assert again.status_code == 200 and again.json() == r.json()
    assert_error(await api.post(url, headers=as_worker(prefix, "w2")), 409, "invalid_request_error")
    stop = await api.post(f"{prefix}/{env}/work/{wid}/stop", json={"force": True}, headers=ADMIN)
    assert stop.json()["state"] == "stopped"
    assert_error(await api.post(url, headers=ADMIN), 409, "invalid_request_error")


async def test_ack_without_worker_id_takes_an_item_never_polled(
    api: httpx.AsyncClient, prefix: str
) -> None:
    env = await new_environment(api)
    sid = await enqueue(api, env)
    r = await api.post(f"{prefix}/{env}/work/{work_id(sid)}/ack", headers=ADMIN)
    assert r.status_code == 200 and r.json()["state"] == "starting"


async def test_unknown_or_foreign_work_item_is_404(api: httpx.AsyncClient, prefix: str) -> None:
    env, other = await new_environment(api), await new_environment(api, "other")
    sid = await enqueue(api, other)
    for wid in (work_id(sid), "work_" + "f" * 32, "nonsense"):
        r = await api.post(f"{prefix}/{env}/work/{wid}/ack", headers=ADMIN)
        assert_error(r, 404, "not_found_error")
        assert_error(
            await api.get(f"{prefix}/{env}/work/{wid}", headers=ADMIN), 404, "not_found_error"
        )


# -- heartbeat --


async def test_heartbeat_compare_and_set(api: httpx.AsyncClient, prefix: str) -> None:
    env = await new_environment(api)
    wid = await acked(api, prefix, env)
    first = await beat(api, prefix, env, wid, expected_last_heartbeat="NO_HEARTBEAT")
    assert first.status_code == 200
    hb = first.json()
    assert hb["type"] == "work_heartbeat" and hb["state"] == "active"
    assert hb["lease_extended"] is True and hb["ttl_seconds"] == 60
    item = (await api.get(f"{prefix}/{env}/work/{wid}", headers=ADMIN)).json()
    assert item["state"] == "active" and item["started_at"] is not None
    assert item["latest_heartbeat_at"] == hb["last_heartbeat"]
    # The same clock instant still yields a new, distinct last_heartbeat.
    second = await beat(api, prefix, env, wid, expected_last_heartbeat=hb["last_heartbeat"])
    assert second.status_code == 200
    assert second.json()["last_heartbeat"] != hb["last_heartbeat"]
    # Another worker echoing the stale value, or claiming with NO_HEARTBEAT, loses: 412.
    for stale in (hb["last_heartbeat"], "NO_HEARTBEAT"):
        r = await beat(api, prefix, env, wid, expected_last_heartbeat=stale)
        body = assert_error(r, 412, "precondition_failed_error")
        assert body["error"]["details"] == {
            "error_code": "heartbeat_precondition_failed",
            "current_state": {
                "last_heartbeat": second.json()["last_heartbeat"],
                "lease_extended": False,
                "state": "active",
                "ttl_seconds": 60,
            },
        }
    # Without expected_last_heartbeat the heartbeat is unconditional.
    assert (await beat(api, prefix, env, wid)).status_code == 200


@pytest.mark.parametrize(("asked", "granted"), [("1", 10), ("10", 10), ("120", 120), ("9999", 600)])
async def test_heartbeat_ttl_is_clamped_to_10_600_and_sets_the_lease(
    api: httpx.AsyncClient, prefix: str, clock: ManualClock, asked: str, granted: int
) -> None:
    env = await new_environment(api)
    wid = await acked(api, prefix, env)
    r = await beat(api, prefix, env, wid, desired_ttl_seconds=asked)
    assert r.json()["ttl_seconds"] == granted
    sid = "sess_" + wid.removeprefix("work_")
    session = await dispatcher(api).get_session(sid)
    assert session.lease_expires_at == clock.now_ms() + granted * 1000


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"desired_ttl_seconds": "0"}, "desired_ttl_seconds"),
        ({"desired_ttl_seconds": "ten"}, "desired_ttl_seconds"),
        ({"expected_last_heartbeat": "yesterday"}, "expected_last_heartbeat"),
    ],
)
async def test_heartbeat_rejects_bad_parameters(
    api: httpx.AsyncClient, prefix: str, query: dict[str, str], field: str
) -> None:
    env = await new_environment(api)
    wid = await acked(api, prefix, env)
    body = assert_error(await beat(api, prefix, env, wid, **query), 400, "invalid_request_error")
    assert field in body["error"]["message"]
    item = (await api.get(f"{prefix}/{env}/work/{wid}", headers=ADMIN)).json()
    assert item["state"] == "starting"  # the failed request changed nothing


async def test_heartbeat_on_queued_or_stopped_is_409(api: httpx.AsyncClient, prefix: str) -> None:
    env = await new_environment(api)
    sid = await enqueue(api, env)
    r = await beat(api, prefix, env, work_id(sid), expected_last_heartbeat="NO_HEARTBEAT")
    assert_error(r, 409, "invalid_request_error")
    wid = await acked(api, prefix, env)
    await api.post(f"{prefix}/{env}/work/{wid}/stop", json={"force": True}, headers=ADMIN)
    assert_error(await beat(api, prefix, env, wid), 409, "invalid_request_error")


# -- lease expiry --


async def test_an_expired_lease_returns_the_item_to_the_queue(
    api: httpx.AsyncClient, prefix: str, clock: ManualClock
) -> None:
    env = await new_environment(api)
    wid = await acked(api, prefix, env, "w1")
    hb = (
        await beat(
            api, prefix, env, wid, expected_last_heartbeat="NO_HEARTBEAT", desired_ttl_seconds="10"
        )
    ).json()
    clock.advance(9)
    assert (await dispatcher(api).reap()).requeued == []
    clock.advance(2)
    requeued = (await dispatcher(api).reap()).requeued
    assert requeued == ["sess_" + wid.removeprefix("work_")]
    item = (await api.get(f"{prefix}/{env}/work/{wid}", headers=ADMIN)).json()
    assert item["state"] == "queued"
    assert item["acknowledged_at"] is None and item["latest_heartbeat_at"] is None
    # The old holder has lost it; a new worker polls it at once and starts over.
    r = await beat(api, prefix, env, wid, expected_last_heartbeat=hb["last_heartbeat"])
    assert_error(r, 409, "invalid_request_error")
    assert (await poll(api, prefix, env, "w2"))["id"] == wid  # type: ignore[index]
    r = await api.post(f"{prefix}/{env}/work/{wid}/ack", headers=as_worker(prefix, "w2"))
    assert r.json()["state"] == "starting"
    r = await beat(api, prefix, env, wid, expected_last_heartbeat="NO_HEARTBEAT")
    assert r.status_code == 200


async def test_an_acked_item_that_never_heartbeats_is_requeued_after_the_default_ttl(
    api: httpx.AsyncClient, prefix: str, clock: ManualClock
) -> None:
    env = await new_environment(api)
    wid = await acked(api, prefix, env)
    clock.advance(61)
    await dispatcher(api).reap()
    assert (await poll(api, prefix, env, "w2"))["id"] == wid  # type: ignore[index]


# -- stop --


async def test_graceful_stop_is_two_phase_for_an_active_item(
    api: httpx.AsyncClient, prefix: str
) -> None:
    env = await new_environment(api)
    wid = await acked(api, prefix, env)
    hb = (await beat(api, prefix, env, wid, expected_last_heartbeat="NO_HEARTBEAT")).json()
    url = f"{prefix}/{env}/work/{wid}/stop"
    first = await api.post(url, json={}, headers=ADMIN)
    assert first.status_code == 200
    assert first.json()["state"] == "stopping" and first.json()["stop_requested_at"] is not None
    # The worker learns of it from its heartbeat; no comparison is made while stopping.
    r = await beat(api, prefix, env, wid, expected_last_heartbeat="NO_HEARTBEAT")
    assert r.status_code == 200 and r.json()["state"] == "stopping"
    assert hb["last_heartbeat"]
    second = await api.post(url, headers=ADMIN)  # empty body, as the SDK sends a bare stop
    assert second.json()["state"] == "stopped" and second.json()["stopped_at"] is not None
    again = await api.post(url, json={"force": True}, headers=ADMIN)
    assert again.status_code == 200 and again.json() == second.json()


async def test_graceful_stop_ends_at_once_when_nothing_can_drain(
    api: httpx.AsyncClient, prefix: str
) -> None:
    env = await new_environment(api)
    # Acknowledged but never heartbeated (iter_work's items): nothing is told to drain.
    starting = await acked(api, prefix, env, "w1")
    r = await api.post(f"{prefix}/{env}/work/{starting}/stop", json={}, headers=ADMIN)
    assert r.json()["state"] == "stopped"
    # The holder itself asking to stop: no one else to wait for.
    active = await acked(api, prefix, env, "w2")
    await beat(api, prefix, env, active)
    r = await api.post(
        f"{prefix}/{env}/work/{active}/stop", json={}, headers=as_worker(prefix, "w2")
    )
    assert r.json()["state"] == "stopped"


async def test_stop_of_queued_work_needs_force(api: httpx.AsyncClient, prefix: str) -> None:
    env = await new_environment(api)
    wid = work_id(await enqueue(api, env))
    url = f"{prefix}/{env}/work/{wid}/stop"
    assert_error(
        await api.post(url, json={"force": False}, headers=ADMIN), 409, "invalid_request_error"
    )
    r = await api.post(url, json={"force": True}, headers=ADMIN)
    assert r.json()["state"] == "stopped" and r.json()["acknowledged_at"] is None
    assert await poll(api, prefix, env, "w1") is None


async def test_stop_rejects_a_non_boolean_force(api: httpx.AsyncClient, prefix: str) -> None:
    env = await new_environment(api)
    wid = await acked(api, prefix, env)
    r = await api.post(f"{prefix}/{env}/work/{wid}/stop", json={"force": "yes"}, headers=ADMIN)
    assert "force" in assert_error(r, 400, "invalid_request_error")["error"]["message"]
    bad = await api.post(f"{prefix}/{env}/work/{wid}/stop", content=b"{", headers=ADMIN)
    assert_error(bad, 400, "invalid_request_error")


# -- stats, list, metadata --


async def test_stats(api: httpx.AsyncClient, prefix: str, clock: ManualClock) -> None:
    env = await new_environment(api)
    empty = (await api.get(f"{prefix}/{env}/work/stats", headers=ADMIN)).json()
    assert empty == {
        "type": "work_queue_stats",
        "depth": 0,
        "pending": 0,
        "oldest_queued_at": None,
        "workers_polling": 0,
    }
    first = await enqueue(api, env)
    clock.advance(1)
    await enqueue(api, env)
    await enqueue(api, env)
    await poll(api, prefix, env, "w1")  # delivered, not acked: pending
    await api.get(f"{prefix}/{env}/work/poll", headers=ADMIN)  # no Worker-ID: not counted
    stats = (await api.get(f"{prefix}/{env}/work/stats", headers=ADMIN)).json()
    created = (await api.get(f"{prefix}/{env}/work/{work_id(first)}", headers=ADMIN)).json()
    assert (stats["depth"], stats["pending"], stats["workers_polling"]) == (1, 2, 1)
    assert stats["oldest_queued_at"] == created["created_at"]
    clock.advance(31)
    later = (await api.get(f"{prefix}/{env}/work/stats", headers=ADMIN)).json()
    assert (later["depth"], later["pending"], later["workers_polling"]) == (3, 0, 0)


async def test_list_pages_in_queue_order(api: httpx.AsyncClient, prefix: str) -> None:
    env = await new_environment(api)
    wids = [work_id(await enqueue(api, env)) for _ in range(5)]
    url = f"{prefix}/{env}/work"
    first = (await api.get(url, params={"limit": 2}, headers=ADMIN)).json()
    assert [w["id"] for w in first["data"]] == wids[:2]
    assert (first["has_more"], first["next_page"], first["first_id"], first["last_id"]) == (
        True,
        wids[1],
        wids[0],
        wids[1],
    )
    seen = [w["id"] for w in first["data"]]
    page = first
    while page["next_page"]:
        params = {"limit": 2, "page": page["next_page"]}
        page = (await api.get(url, params=params, headers=ADMIN)).json()
        seen.extend(w["id"] for w in page["data"])
    assert seen == wids and page["next_page"] is None and page["has_more"] is False
    before = (await api.get(url, params={"before_id": wids[3], "limit": 2}, headers=ADMIN)).json()
    assert [w["id"] for w in before["data"]] == wids[1:3]
    big = (await api.get(url, params={"limit": 1000}, headers=ADMIN)).json()
    assert len(big["data"]) == 5  # over 100 is capped, not refused
    for params in (
        {"limit": 0},
        {"limit": "x"},
        {"page": "zzz"},
        {"page": wids[0], "after_id": wids[1]},
    ):
        assert_error(await api.get(url, params=params, headers=ADMIN), 400, "invalid_request_error")


async def test_metadata_merge_patch(api: httpx.AsyncClient, prefix: str) -> None:
    env = await new_environment(api)
    wid = work_id(await enqueue(api, env, metadata={"keep": "1", "drop": "2", "blank": "3"}))
    url = f"{prefix}/{env}/work/{wid}"
    r = await api.post(
        url, json={"metadata": {"drop": None, "new": "x", "blank": ""}}, headers=ADMIN
    )
    assert r.status_code == 200
    # An empty string deletes on the Anthropic path and is a value on the Qoder path.
    expected = {"keep": "1", "new": "x", **({"blank": ""} if prefix == Q else {})}
    assert r.json()["metadata"] == expected
    unchanged = await api.post(url, json={}, headers=ADMIN)
    assert unchanged.json()["metadata"] == expected
    for bad in (
        {"metadata": {"n": 1}},
        {"metadata": ["x"]},
        {"metadata": {f"k{i}": "v" for i in range(17)}},
    ):
        r = await api.post(url, json=bad, headers=ADMIN)
        assert "metadata" in assert_error(r, 400, "invalid_request_error")["error"]["message"]
    assert (await api.get(url, headers=ADMIN)).json()["metadata"] == expected
