"""Repositories, credential sources and batch work through the operator API and the poll, in
process, on both backends: who may touch what, bad input, static tokens and their expiry,
batch items gated by capability, leased, redelivered and fenced."""

from __future__ import annotations

from typing import Any

import httpx

from shopfloor.clock import ManualClock
from tests.conftest import ADMIN_KEY, WORKER_KEY

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
STATIC_WORKER = {"Authorization": f"Bearer {WORKER_KEY}"}
PAT = "ghp_StaticTokenNobodyMaySee0123456789"
SCAN = "code-survival-scan"
REPO = "https://github.com/acme/api.git"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ok(reply: Any, status: int = 200) -> Any:
    response = await reply
    assert response.status_code == status, response.text
    return response.json()


async def org_key(api: httpx.AsyncClient, slug: str, **body: Any) -> dict[str, str]:
    org = await ok(api.post("/api/v1/orgs", json={"slug": slug}, headers=ADMIN), 201)
    minted = await ok(
        api.post(f"/api/org/{org['id']}/keys", json={"name": "k", **body}, headers=ADMIN)
    )
    return bearer(minted["key"]["fullKey"])


async def jwt_worker(
    api: httpx.AsyncClient, org: str | None = None, capabilities: list[str] | None = None
) -> tuple[str, dict[str, str]]:
    body = {} if org is None else {"org": org}
    token = await ok(api.post("/api/v1/registration-tokens", json=body, headers=ADMIN), 201)
    registered = await ok(
        api.post(
            "/api/workers/register",
            json={"hostname": "h", "capacity": 5, "capabilities": capabilities or []},
            headers=bearer(token["token"]),
        ),
        201,
    )
    return registered["workerId"], bearer(registered["runtimeToken"])


async def poll(api: httpx.AsyncClient, worker: str, headers: dict[str, str]) -> Any:
    return await ok(api.get(f"/api/workers/{worker}/poll", headers=headers))


async def static_source(
    api: httpx.AsyncClient, headers: dict[str, str] = ADMIN, **body: Any
) -> Any:
    fields = {"kind": "static", "name": "pat", "token": PAT, "orgDefault": True, **body}
    return await ok(api.post("/api/v1/git-credential-sources", json=fields, headers=headers), 201)


async def test_a_jwt_worker_gets_the_static_token_for_its_sessions_repository_only(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    expiry = clock.now_ms() + 1_800_000  # within the runtime token's hour
    source = await static_source(api, expiresAt=expiry)
    assert "token" not in source and PAT not in str(source)
    await ok(api.post("/api/v1/repositories", json={"url": REPO}, headers=ADMIN), 201)
    await ok(
        api.post(
            "/api/v1/repositories", json={"url": "https://github.com/acme/other"}, headers=ADMIN
        ),
        201,
    )
    worker, jwt = await jwt_worker(api)
    await ok(
        api.post(
            "/api/v1/sessions",
            json={"prompt": "p", "repository": "github.com/ACME/api"},
            headers=ADMIN,
        ),
        201,
    )
    polled = await poll(api, worker, jwt)
    assert len(polled["work"]) == 1
    (credential,) = polled["gitCredentials"]
    assert credential["token"] == PAT and credential["cloneUrl"] == REPO
    assert credential["expiresAt"].startswith("2026-01-01T00:30:00")
    assert (await poll(api, worker, jwt))["gitCredentials"] == []  # nothing claimed
    # A session of a repository the organisation has no record of: no credential.
    await ok(
        api.post("/api/v1/sessions", json={"prompt": "p", "repository": "x/y"}, headers=ADMIN),
        201,
    )
    assert (await poll(api, worker, jwt))["gitCredentials"] == []
    # The static key's workers get none, as the seed says.
    static = await ok(
        api.post(
            "/api/workers/register", json={"hostname": "s", "capacity": 2}, headers=STATIC_WORKER
        ),
        201,
    )
    await ok(
        api.post("/api/v1/sessions", json={"prompt": "p", "repository": REPO}, headers=ADMIN), 201
    )
    reply = await poll(api, static["workerId"], STATIC_WORKER)
    assert len(reply["work"]) == 1 and "gitCredentials" not in reply and "batchWork" not in reply
    # Once the static token has expired it is no longer handed out, and the source says why.
    clock.advance(1801)
    await ok(
        api.post("/api/v1/sessions", json={"prompt": "p", "repository": REPO}, headers=ADMIN), 201
    )
    assert (await poll(api, worker, jwt))["gitCredentials"] == []
    (listed,) = await ok(api.get("/api/v1/git-credential-sources", headers=ADMIN))
    assert listed["lastError"] == "the static token has expired" and PAT not in str(listed)


async def test_sources_and_repositories_stay_in_their_organisation(
    api: httpx.AsyncClient,
) -> None:
    acme = await org_key(api, "acme")
    globex = await org_key(api, "globex")
    source = await static_source(api, acme)
    repo = await ok(
        api.post(
            "/api/v1/repositories", json={"url": REPO, "sourceId": source["id"]}, headers=acme
        ),
        201,
    )
    assert await ok(api.get("/api/v1/git-credential-sources", headers=globex)) == []
    assert await ok(api.get("/api/v1/repositories", headers=globex)) == []
    for path in (
        f"/api/v1/repositories/{repo['id']}",
        f"/api/v1/git-credential-sources/{source['id']}",
    ):
        assert (await api.delete(path, headers=globex)).status_code == 404
    borrowed = await api.post(
        "/api/v1/repositories", json={"url": REPO, "sourceId": source["id"]}, headers=globex
    )
    assert borrowed.status_code == 404
    other_org = await api.post(
        "/api/v1/git-credential-sources",
        json={"kind": "static", "name": "x", "token": "t", "orgId": "acme"},
        headers=globex,
    )
    assert other_org.status_code == 403
    # A globex worker claiming a session of the same repository gets nothing of acme's.
    worker, jwt = await jwt_worker(api, "globex")
    await ok(
        api.post(
            "/api/v1/sessions",
            json={"prompt": "p", "repository": REPO, "orgId": "globex"},
            headers=ADMIN,
        ),
        201,
    )
    polled = await poll(api, worker, jwt)
    assert len(polled["work"]) == 1 and polled["gitCredentials"] == []
    # Keys without the scope, or limited to projects, may not manage sources.
    reader = await org_key(api, "initech", scopes=["sessions:read"])
    assert (await api.get("/api/v1/git-credential-sources", headers=reader)).status_code == 403
    assert (
        await api.post("/api/v1/repositories", json={"url": REPO}, headers=reader)
    ).status_code == 403


async def test_bad_input_names_the_field_and_changes_nothing(api: httpx.AsyncClient) -> None:
    cases = [
        ("/api/v1/repositories", {"url": "git@github.com:acme/api.git"}, "url"),
        ("/api/v1/repositories", {"url": "https://github.com/only-owner"}, "url"),
        ("/api/v1/repositories", {"url": REPO, "sourceId": "gcs_missing"}, "gcs_missing"),
        ("/api/v1/git-credential-sources", {"kind": "static", "name": "x"}, "token"),
        ("/api/v1/git-credential-sources", {"kind": "github_app", "name": "x"}, "appId"),
        (
            "/api/v1/git-credential-sources",
            {"kind": "static", "name": "x", "token": "t", "expiresAt": 2**53 - 1},
            "expiresAt",
        ),
        ("/api/v1/git-credential-sources", {"kind": "ssh", "name": "x", "token": "t"}, "kind"),
        (
            "/api/v1/batch-items",
            {"kind": SCAN, "capability": "mining", "payload": {}},
            "capability",
        ),
        (
            "/api/v1/batch-items",
            {"kind": SCAN, "capability": SCAN, "payload": {}},
            "payload.repository",
        ),
        (
            "/api/v1/batch-items",
            {"kind": "k", "capability": SCAN, "payload": {"x": "a" * 70_000}},
            "payload",
        ),
    ]
    for path, body, field in cases:
        reply = await api.post(path, json=body, headers=ADMIN)
        assert reply.status_code in (400, 404), (path, body, reply.text)
        assert field in reply.json()["message"], (path, body, reply.text)
    for path in ("/api/v1/repositories", "/api/v1/git-credential-sources", "/api/v1/batch-items"):
        assert await ok(api.get(path, headers=ADMIN)) == []
    refused = await api.post(
        "/api/workers/register",
        json={"hostname": "h", "capacity": 1, "capabilities": ["Bad Name"]},
        headers=STATIC_WORKER,
    )
    assert refused.status_code == 400 and "capabilities" in refused.json()["message"]


def scan(n: int) -> dict[str, Any]:
    return {
        "kind": SCAN,
        "capability": SCAN,
        "payload": {"repository": REPO, "sessionIds": [f"s{n}"]},
    }


async def test_batch_work_goes_to_capable_workers_leased_redelivered_and_fenced(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    items = [
        (await ok(api.post("/api/v1/batch-items", json=scan(n), headers=ADMIN), 201))["id"]
        for n in range(7)
    ]
    plain, plain_jwt = await jwt_worker(api)
    assert "batchWork" not in await poll(api, plain, plain_jwt)
    static = await ok(
        api.post(
            "/api/workers/register",
            json={"hostname": "s", "capacity": 2, "capabilities": [SCAN]},
            headers=STATIC_WORKER,
        ),
        201,
    )
    assert "batchWork" not in await poll(api, static["workerId"], STATIC_WORKER)
    one, one_jwt = await jwt_worker(api, capabilities=[SCAN])
    two, two_jwt = await jwt_worker(api, capabilities=[SCAN, "other"])
    first = (await poll(api, one, one_jwt))["batchWork"]
    second = (await poll(api, two, two_jwt))["batchWork"]
    assert [i["id"] for i in first + second] == items  # 5 per poll, oldest first, each once
    assert first[0]["payload"] == scan(0)["payload"] and first[0]["leaseEpoch"] == 1
    assert "batchWork" not in await poll(api, two, two_jwt)

    def result_url(worker: str, item: str) -> str:
        return f"/api/workers/{worker}/batch-work/{item}/result"

    done = {"leaseEpoch": 1, "status": "completed", "result": {"survivingLines": 12}}
    assert (
        await api.post(result_url(one, items[0]), json=done, headers=one_jwt)
    ).status_code == 200
    # Another worker's token, or the right worker without the lease, is refused.
    assert (
        await api.post(result_url(one, items[1]), json=done, headers=two_jwt)
    ).status_code == 403
    assert (
        await api.post(result_url(two, items[1]), json=done, headers=two_jwt)
    ).status_code == 409
    # The rest of worker one's lease runs out: worker two gets those items, epoch 2.
    clock.advance(601)
    again = (await poll(api, two, two_jwt))["batchWork"]
    assert [i["id"] for i in again] == items[1:6]
    assert {(i["leaseEpoch"], i["attempts"]) for i in again} == {(2, 2)}
    late = await api.post(result_url(one, items[1]), json=done, headers=one_jwt)
    assert late.status_code == 409
    now_done = {**done, "leaseEpoch": 2}
    assert (
        await api.post(result_url(two, items[1]), json=now_done, headers=two_jwt)
    ).status_code == 200
    stored = await ok(api.get(f"/api/v1/batch-items/{items[1]}", headers=ADMIN))
    assert (stored["status"], stored["workerId"], stored["result"]) == (
        "completed",
        two,
        {"survivingLines": 12},
    )
    bad = await api.post(
        result_url(two, items[2]), json={"leaseEpoch": 2, "status": "done"}, headers=two_jwt
    )
    assert bad.status_code == 400 and "status" in bad.json()["message"]


async def test_batch_items_stay_in_their_organisation(api: httpx.AsyncClient) -> None:
    acme = await org_key(api, "acme")
    item = await ok(api.post("/api/v1/batch-items", json=scan(1), headers=acme), 201)
    globex = await org_key(api, "globex")
    assert await ok(api.get("/api/v1/batch-items", headers=globex)) == []
    assert (await api.get(f"/api/v1/batch-items/{item['id']}", headers=globex)).status_code == 404
    worker, jwt = await jwt_worker(api, "globex", [SCAN])
    assert "batchWork" not in await poll(api, worker, jwt)
    worker, jwt = await jwt_worker(api, "acme", [SCAN])
    assert [i["id"] for i in (await poll(api, worker, jwt))["batchWork"]] == [item["id"]]


async def test_sources_and_repositories_are_audited_without_their_secrets(
    api: httpx.AsyncClient,
) -> None:
    source = await static_source(api)
    repo = await ok(api.post("/api/v1/repositories", json={"url": REPO}, headers=ADMIN), 201)
    await ok(api.delete(f"/api/v1/repositories/{repo['id']}", headers=ADMIN))
    await ok(api.delete(f"/api/v1/git-credential-sources/{source['id']}", headers=ADMIN))
    reply = await ok(api.get("/api/audit/events", params={"orgId": "org_default"}, headers=ADMIN))
    recorded = [(e["type"], e["payload"]) for e in reply["events"]]
    assert [kind for kind, _ in recorded if kind.split(".")[0] in ("git_source", "repository")] == [
        "git_source.created",
        "repository.created",
        "repository.deleted",
        "git_source.deleted",
    ]
    assert ("git_source.created", {"kind": "static", "name": "pat", "orgDefault": True}) in recorded
    assert PAT not in str(reply)
