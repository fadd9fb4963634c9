"""Daemon-native registration and heartbeat (rensei-platform.md §1.1, §1.2) and daemon
mutations (§1.9): v1 maps onto the same worker records; a mutation is delivered in one
heartbeat reply only, even when two race, and cannot be cancelled after; no organisation's key
touches another's hosts. Both databases, in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopfloor.clock import ManualClock
from tests.agentfactory.helpers import ADMIN
from tests.conftest import Backend, make_settings, running_app
from tests.platform.test_tenancy import bearer, key, new_org


async def registration(api: httpx.AsyncClient, org: str) -> tuple[str, str]:
    minted = await api.post(
        f"/api/org/{org}/keys",
        json={"name": "daemon", "keyType": "worker_registration"},
        headers=ADMIN,
    )
    return minted.json()["key"]["fullKey"], minted.json()["keyId"]


async def register(api: httpx.AsyncClient, token: str, **extra: Any) -> httpx.Response:
    body = {"registrationToken": token, "hostname": "mac-1", "maxAgents": 4, **extra}
    return await api.post("/v1/daemon/register", json=body)


async def host(api: httpx.AsyncClient, org: str) -> tuple[str, dict[str, str]]:
    token, _ = await registration(api, org)
    reply = (await register(api, token)).json()
    return reply["workerId"], bearer(reply["runtimeJwt"])


async def beat(api: httpx.AsyncClient, worker: str, jwt: dict[str, str]) -> httpx.Response:
    body = {"workerId": worker, "activeSessions": 0, "status": "idle"}
    return await api.post("/v1/daemon/heartbeat", json=body, headers=jwt)


async def enqueue(
    api: httpx.AsyncClient, worker: str, headers: dict[str, str] = ADMIN, **extra: Any
) -> httpx.Response:
    body = {"workerHostId": worker, "op": "project.add", "params": {"project": "web"}, **extra}
    return await api.post("/api/daemon/mutations", json=body, headers=headers)


async def test_v1_registration_and_heartbeat(api: httpx.AsyncClient) -> None:
    org = await new_org(api, "acme")
    token, _ = await registration(api, "acme")
    reply = await register(api, token, region="eu", capabilities=["code-survival-scan"])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["heartbeatIntervalSeconds"] == 30 and body["pollIntervalSeconds"] == 5
    assert body["runtimeJwt"].count(".") == 2
    workers = (await api.get("/api/v1/workers", params={}, headers=ADMIN)).json()
    [worker] = [w for w in workers if w["workerId"] == body["workerId"]]
    assert worker["capacity"] == 4
    jwt = bearer(body["runtimeJwt"])
    beat_reply = await beat(api, body["workerId"], jwt)
    assert beat_reply.status_code == 200, beat_reply.text
    beat_body = beat_reply.json()
    assert beat_body["acknowledged"] is True and beat_body["ok"] is True
    assert beat_body["serverTime"].endswith("Z") and beat_body["serverTimeMs"] > 0
    assert beat_body["pendingWorkCount"] == 0 and beat_body["mutations"] == []
    # The same worker answers the AgentFactory routes with the same token.
    polled = await api.get(f"/api/workers/{body['workerId']}/poll", headers=jwt)
    assert polled.status_code == 200
    assert org


async def test_v1_refusals(api: httpx.AsyncClient) -> None:
    await new_org(api, "acme")
    token, key_id = await registration(api, "acme")
    assert (await api.post("/v1/daemon/register", json={})).json() == {
        "error": "registrationToken is required"
    }
    wrong = await register(api, "rsk_live_" + "0" * 64)
    assert (wrong.status_code, wrong.json()) == (
        401,
        {"error": "Invalid or revoked registration token"},
    )
    bad = await register(api, token, maxAgents=0)
    assert (bad.status_code, bad.json()) == (
        400,
        {"error": "maxAgents: Input should be greater than 0"},
    )
    status = await register(api, token, status="sleeping")
    assert status.json()["error"].startswith("status: Input should be")
    worker, jwt = await host(api, "acme")
    other, _ = await host(api, "acme")
    spoof = await beat(api, other, jwt)
    assert spoof.json() == {"error": "workerId: does not match the runtime token"}
    by_key = await beat(api, worker, bearer(token))
    assert by_key.status_code == 401
    missing = await api.post("/v1/daemon/heartbeat", json={"workerId": worker}, headers=jwt)
    assert missing.json() == {"error": "activeSessions: Field required"}
    mine = (await register(api, token)).json()
    await api.delete(f"/api/org/acme/keys/{key_id}", headers=ADMIN)
    assert (await register(api, token)).status_code == 401
    assert (await beat(api, mine["workerId"], bearer(mine["runtimeJwt"]))).status_code == 401


async def test_a_mutation_is_delivered_once_and_then_not_cancellable(
    api: httpx.AsyncClient,
) -> None:
    await new_org(api, "acme")
    worker, jwt = await host(api, "acme")
    admin_of_acme = await key(api, "acme")
    first = (await enqueue(api, worker, admin_of_acme)).json()["mutation"]
    assert (first["status"], first["op"], first["workerHostId"]) == (
        "pending",
        "project.add",
        worker,
    )
    assert first["deliveredAt"] is None and first["params"] == {"project": "web"}
    second = (await enqueue(api, worker, op="modelAccess.clear", params={})).json()["mutation"]
    cancelled = await api.delete(f"/api/daemon/mutations/{second['id']}", headers=admin_of_acme)
    assert cancelled.json() == {"cancelled": True}
    delivered = (await beat(api, worker, jwt)).json()["mutations"]
    assert [m["id"] for m in delivered] == [first["id"]]
    assert delivered[0]["status"] == "delivered" and delivered[0]["deliveredAt"]
    assert (await beat(api, worker, jwt)).json()["mutations"] == []
    late = await api.delete(f"/api/daemon/mutations/{first['id']}", headers=admin_of_acme)
    assert late.status_code == 409
    assert late.json()["cancelled"] is False and late.json()["reason"] == "already_delivered"
    listed = await api.get(
        "/api/daemon/mutations", params={"workerHostId": worker}, headers=admin_of_acme
    )
    assert {m["id"]: m["status"] for m in listed.json()["mutations"]} == {
        first["id"]: "delivered",
        second["id"]: "cancelled",
    }


async def test_racing_heartbeats_deliver_each_mutation_once(api: httpx.AsyncClient) -> None:
    await new_org(api, "acme")
    worker, jwt = await host(api, "acme")
    ids = [(await enqueue(api, worker)).json()["mutation"]["id"] for _ in range(10)]
    replies = await asyncio.gather(*(beat(api, worker, jwt) for _ in range(4)))
    seen = [m["id"] for r in replies for m in r.json()["mutations"]]
    assert sorted(seen) == sorted(ids)


async def test_another_organisations_key_cannot_touch_a_host(api: httpx.AsyncClient) -> None:
    await new_org(api, "a")
    await new_org(api, "b")
    worker, jwt = await host(api, "a")
    key_b = await key(api, "b")
    mutation = (await enqueue(api, worker)).json()["mutation"]
    assert (await enqueue(api, worker, key_b)).status_code == 404
    listed = await api.get("/api/daemon/mutations", params={"workerHostId": worker}, headers=key_b)
    assert listed.status_code == 404
    gone = await api.delete(f"/api/daemon/mutations/{mutation['id']}", headers=key_b)
    assert (gone.status_code, gone.json()) == (404, {"error": "Mutation not found"})
    # Still pending, and delivered to its own host.
    assert [m["id"] for m in (await beat(api, worker, jwt)).json()["mutations"]] == [mutation["id"]]


async def test_scopes_bound_the_mutation_routes(api: httpx.AsyncClient) -> None:
    await new_org(api, "acme")
    worker, _ = await host(api, "acme")
    reader = await key(api, "acme", scopes=["workers:read"])
    sessions = await key(api, "acme", scopes=["sessions:read"])
    refused = await enqueue(api, worker, reader)
    assert refused.json() == {"error": "This key lacks the workers:write scope"}
    listed = await api.get("/api/daemon/mutations", params={"workerHostId": worker}, headers=reader)
    assert listed.status_code == 200
    assert (
        await api.get("/api/daemon/mutations", params={"workerHostId": worker}, headers=sessions)
    ).json() == {"error": "This key lacks the workers:read scope"}
    mutation = (await enqueue(api, worker)).json()["mutation"]
    assert (
        await api.delete(f"/api/daemon/mutations/{mutation['id']}", headers=reader)
    ).status_code == 403


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"op": "project.add"}, "workerHostId: Field required"),
        ({"workerHostId": "w", "op": "reboot"}, "op: Input should be"),
        ({"workerHostId": "w", "op": "project.add", "params": []}, "params: Input should be"),
    ],
)
async def test_bad_mutations_name_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    reply = await api.post("/api/daemon/mutations", json=body, headers=ADMIN)
    assert reply.status_code == 400 and reply.json()["error"].startswith(message), reply.text
    missing = await api.get("/api/daemon/mutations", headers=ADMIN)
    assert missing.json() == {"error": "workerHostId is required"}


async def af_beat(api: httpx.AsyncClient, worker: str, jwt: dict[str, str]) -> httpx.Response:
    body = {"activeCount": 0}
    return await api.post(f"/api/workers/{worker}/heartbeat", json=body, headers=jwt)


async def test_the_agentfactory_heartbeat_delivers_mutations_too(api: httpx.AsyncClient) -> None:
    await new_org(api, "acme")
    worker, jwt = await host(api, "acme")
    quiet = await af_beat(api, worker, jwt)
    assert quiet.status_code == 200 and "mutations" not in quiet.json()
    first = (await enqueue(api, worker)).json()["mutation"]
    delivered = (await af_beat(api, worker, jwt)).json()["mutations"]
    assert [m["id"] for m in delivered] == [first["id"]]
    assert delivered[0]["status"] == "delivered" and delivered[0]["workerHostId"] == worker
    assert "mutations" not in (await af_beat(api, worker, jwt)).json()
    assert (await beat(api, worker, jwt)).json()["mutations"] == []
    late = await api.delete(f"/api/daemon/mutations/{first['id']}", headers=ADMIN)
    assert late.status_code == 409
    # A mutation delivered by the v1 heartbeat is not delivered again on the other one.
    second = (await enqueue(api, worker)).json()["mutation"]
    assert [m["id"] for m in (await beat(api, worker, jwt)).json()["mutations"]] == [second["id"]]
    assert "mutations" not in (await af_beat(api, worker, jwt)).json()


async def test_racing_heartbeats_of_both_kinds_deliver_each_mutation_once(
    api: httpx.AsyncClient,
) -> None:
    await new_org(api, "acme")
    worker, jwt = await host(api, "acme")
    for _ in range(5):
        ids = [(await enqueue(api, worker)).json()["mutation"]["id"] for _ in range(3)]
        replies = await asyncio.gather(
            af_beat(api, worker, jwt), af_beat(api, worker, jwt), beat(api, worker, jwt)
        )
        assert all(r.status_code == 200 for r in replies)
        seen = [m["id"] for r in replies for m in r.json().get("mutations", [])]
        assert sorted(seen) == sorted(ids)


async def test_a_mutation_enqueued_on_one_process_rides_another_ones_heartbeat(
    postgres: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    settings = make_settings(postgres, tmp_path)
    async with running_app(settings, clock) as one, running_app(settings, clock) as two:
        await new_org(one, "acme")
        worker, jwt = await host(one, "acme")
        assert "mutations" not in (await af_beat(two, worker, jwt)).json()
        mutation = (await enqueue(one, worker)).json()["mutation"]
        delivered: list[dict[str, Any]] = []
        for _ in range(100):  # the other process hears of it within milliseconds
            delivered = (await af_beat(two, worker, jwt)).json().get("mutations", [])
            if delivered:
                break
            await asyncio.sleep(0.05)
        assert [m["id"] for m in delivered] == [mutation["id"]]
        assert "mutations" not in (await af_beat(one, worker, jwt)).json()
