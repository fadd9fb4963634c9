"""Registration tokens, runtime JWTs and their subject checks (the Go daemon's auth mode)."""

from __future__ import annotations

import httpx
import jwt

from shopfloor.clock import ManualClock
from tests.agentfactory.helpers import ADMIN, WORKER, enqueue


async def mint(api: httpx.AsyncClient, project: str | None = None) -> dict[str, str]:
    body = {"project": project} if project else {}
    r = await api.post("/api/v1/registration-tokens", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    token: dict[str, str] = r.json()
    return token


async def register_with(api: httpx.AsyncClient, token: str) -> dict[str, str]:
    r = await api.post(
        "/api/workers/register",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "machineId": "m1",
            "hostname": "h",
            "capacity": 1,
            "version": "0.7.7",
            "provides": [{"kind": "native"}],
        },
    )
    assert r.status_code == 201, r.text
    reply: dict[str, str] = r.json()
    return reply


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_registration_token_kinds_and_storage(api: httpx.AsyncClient) -> None:
    org = await mint(api)
    proj = await mint(api, project="proj-a")
    assert org["token"].startswith("rsk_live_") and org["kind"] == "rsk"
    assert proj["token"].startswith("rsp_live_") and proj["project"] == "proj-a"
    listed = (await api.get("/api/v1/registration-tokens", headers=ADMIN)).json()
    assert {t["id"] for t in listed} == {org["id"], proj["id"]}
    assert all(t["token"] is None for t in listed)  # secrets are never shown again


async def test_register_with_a_token_returns_a_runtime_jwt(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    token = await mint(api, project="proj-a")
    reply = await register_with(api, token["token"])
    claims = jwt.decode(reply["runtimeToken"], options={"verify_signature": False})
    assert claims["sub"] == reply["workerId"] and claims["proj"] == "proj-a"
    assert claims["reg"] == token["id"]
    assert {"jti", "org", "scope"} <= claims.keys()
    assert claims["exp"] == clock.now_ms() // 1000 + 3600
    assert reply["runtimeTokenExpiresAt"].endswith("Z")


async def test_runtime_jwt_works_for_its_own_worker_only(api: httpx.AsyncClient) -> None:
    await enqueue(api, projectName="proj-a")
    await enqueue(api, projectName="proj-b")
    token = await mint(api, project="proj-a")
    a = await register_with(api, token["token"])
    b = await register_with(api, token["token"])
    jwt_a = bearer(a["runtimeToken"])
    r = await api.get(f"/api/workers/{a['workerId']}/poll", headers=jwt_a)
    assert r.status_code == 200
    # A project-scoped token pins its workers to the project.
    assert [w["projectName"] for w in r.json()["work"]] == ["proj-a"]
    assert (await api.get("/api/config", headers=jwt_a)).json() == {"projects": ["proj-a"]}
    r = await api.get(f"/api/workers/{b['workerId']}/poll", headers=jwt_a)
    assert r.status_code == 403
    assert r.json() == {"error": "Forbidden", "message": "Token subject does not match worker"}
    r = await api.post(
        f"/api/workers/{b['workerId']}/heartbeat", headers=jwt_a, json={"activeCount": 0}
    )
    assert r.status_code == 403


async def test_registration_token_is_not_a_runtime_credential(api: httpx.AsyncClient) -> None:
    token = await mint(api)
    reply = await register_with(api, token["token"])
    r = await api.get(f"/api/workers/{reply['workerId']}/poll", headers=bearer(token["token"]))
    assert r.status_code == 401


async def test_expired_runtime_token_says_so_and_can_be_refreshed(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    token = await mint(api)
    reply = await register_with(api, token["token"])
    wid = reply["workerId"]
    clock.advance(3601)
    r = await api.get(f"/api/workers/{wid}/poll", headers=bearer(reply["runtimeToken"]))
    assert r.status_code == 401 and "Runtime token expired" in r.text
    # The Go daemon refreshes with its registration token…
    r = await api.post(f"/api/workers/{wid}/refresh-token", headers=bearer(token["token"]), json={})
    assert r.status_code == 200
    fresh = r.json()
    assert fresh["heartbeatInterval"] == 30000 and fresh["pollInterval"] == 5000
    assert (
        await api.get(f"/api/workers/{wid}/poll", headers=bearer(fresh["runtimeToken"]))
    ).status_code == 200
    # …and the documented path refreshes with the (expired) JWT itself.
    clock.advance(3601)
    r = await api.post(
        f"/api/workers/{wid}/refresh-token", headers=bearer(fresh["runtimeToken"]), json={}
    )
    assert r.status_code == 200


async def test_refresh_refusals(api: httpx.AsyncClient) -> None:
    token = await mint(api)
    other = await mint(api)
    reply = await register_with(api, token["token"])
    wid = reply["workerId"]
    r = await api.post(f"/api/workers/{wid}/refresh-token", headers=bearer(other["token"]))
    assert r.status_code == 403
    r = await api.post(
        "/api/workers/wkr_0000000000000000/refresh-token", headers=bearer(token["token"])
    )
    assert r.status_code == 404 and r.json()["message"] == "Worker not found"
    revoked = await api.delete(f"/api/v1/registration-tokens/{token['id']}", headers=ADMIN)
    assert revoked.json()["revokedAt"] is not None
    r = await api.post(f"/api/workers/{wid}/refresh-token", headers=bearer(token["token"]))
    assert r.status_code == 401
    # A revoked token registers nobody new either.
    r = await api.post(
        "/api/workers/register",
        headers=bearer(token["token"]),
        json={"hostname": "h", "capacity": 1},
    )
    assert r.status_code == 401


async def test_forged_runtime_token_is_refused(api: httpx.AsyncClient) -> None:
    token = await mint(api)
    reply = await register_with(api, token["token"])
    claims = jwt.decode(reply["runtimeToken"], options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-server-secret-but-long-enough!", algorithm="HS256")
    r = await api.get(f"/api/workers/{reply['workerId']}/poll", headers=bearer(forged))
    assert r.status_code == 401


async def test_static_key_worker_has_no_token_to_refresh(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/api/workers/register", headers=WORKER, json={"hostname": "h", "capacity": 1}
    )
    wid = r.json()["workerId"]
    r = await api.post(f"/api/workers/{wid}/refresh-token", headers=WORKER)
    assert r.status_code == 400
