"""Environments (create, list, get, update, archive, delete), authentication and the error
envelope of the environment work API, and sessions queued into environments."""

from __future__ import annotations

import httpx
import pytest

from shopfloor.clock import ManualClock
from tests.conftest import WORKER_KEY
from tests.environments.helpers import ADMIN, A, Q, assert_error, enqueue, new_environment, work_id

both = pytest.mark.parametrize("prefix", [Q, A], ids=["qoder", "anthropic"])


@both
async def test_environment_lifecycle(api: httpx.AsyncClient, prefix: str) -> None:
    r = await api.post(
        prefix,
        json={"name": "shop", "description": "d", "metadata": {"a": "1", "b": "2"}},
        headers=ADMIN,
    )
    assert r.status_code == 200
    env = r.json()
    assert env["id"].startswith("env_") and len(env["id"]) == 36
    assert {k: env[k] for k in ("type", "name", "description", "config", "metadata")} == {
        "type": "environment",
        "name": "shop",
        "description": "d",
        "config": {"type": "self_hosted"},
        "metadata": {"a": "1", "b": "2"},
    }
    assert (env["status"], env["archived"], env["archived_at"]) == ("ready", False, None)
    url = f"{prefix}/{env['id']}"
    assert (await api.get(url, headers=ADMIN)).json() == env
    r = await api.post(
        url, json={"name": "shop2", "description": None, "metadata": {"a": None}}, headers=ADMIN
    )
    updated = r.json()
    assert (updated["name"], updated["description"], updated["metadata"]) == (
        "shop2",
        None,
        {"b": "2"},
    )
    assert updated["updated_at"] > env["updated_at"]
    archived = (await api.post(url + "/archive", headers=ADMIN)).json()
    assert (archived["status"], archived["archived"]) == ("archived", True)
    assert archived["archived_at"] is not None
    r = await api.post(url, json={"name": "again"}, headers=ADMIN)
    body = assert_error(r, 400, "invalid_request_error")
    assert body["error"]["details"] == {"error_code": "environment_archived"}
    listed = (await api.get(prefix, headers=ADMIN)).json()
    assert listed["data"] == [] and listed["next_page"] is None
    every = (await api.get(prefix, params={"include_archived": "true"}, headers=ADMIN)).json()
    assert [e["id"] for e in every["data"]] == [env["id"]]
    deleted = await api.delete(url, headers=ADMIN)
    assert deleted.json() == {"id": env["id"], "type": "environment_deleted"}
    assert_error(await api.get(url, headers=ADMIN), 404, "not_found_error")


@both
async def test_environment_list_pages_with_next_page(api: httpx.AsyncClient, prefix: str) -> None:
    ids = [await new_environment(api, f"e{i}") for i in range(3)]
    seen: list[str] = []
    params: dict[str, object] = {"limit": 2}
    while True:
        page = (await api.get(prefix, params=params, headers=ADMIN)).json()
        seen.extend(e["id"] for e in page["data"])
        if page["next_page"] is None:
            break
        params["page"] = page["next_page"]
    assert seen == ids


@both
async def test_environment_list_filters_by_creation_time(
    api: httpx.AsyncClient, prefix: str, clock: ManualClock
) -> None:
    """Qoder's `created_at[gte]` / `created_at[lte]` (RFC 3339, inclusive), as qca sends them."""
    ids = []
    for i in range(3):  # created at 00:00:00, 00:00:01 and 00:00:02
        ids.append(await new_environment(api, f"t{i}"))
        clock.advance(1)

    async def listed(**params: object) -> list[str]:
        r = await api.get(prefix, params=params, headers=ADMIN)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["data"]]

    second = "2026-01-01T00:00:01Z"
    assert await listed(**{"created_at[gte]": second}) == ids[1:]
    assert await listed(**{"created_at[lte]": second}) == ids[:2]
    assert await listed(**{"created_at[gte]": second, "created_at[lte]": second}) == ids[1:2]
    assert await listed(**{"created_at[gte]": "2026-01-01T02:00:01+02:00"}) == ids[1:]
    # Below the millisecond: a lower bound rounds up, an upper bound down.
    assert await listed(**{"created_at[gte]": "2026-01-01T00:00:01.000500Z"}) == ids[2:]
    assert await listed(**{"created_at[lte]": "2026-01-01T00:00:01.999999Z"}) == ids[:2]
    # The filter holds on every page (the SDKs re-send it with page=<next_page>).
    page = (
        await api.get(prefix, params={"created_at[lte]": second, "limit": 1}, headers=ADMIN)
    ).json()
    assert [e["id"] for e in page["data"]] == ids[:1] and page["next_page"] == ids[0]
    rest = await listed(**{"created_at[lte]": second, "page": page["next_page"]})
    assert rest == ids[1:2]
    for name in ("created_at[gte]", "created_at[lte]"):
        for bad in ("yesterday", "2026-01-01", "2026-01-01T00:00:01"):
            r = await api.get(prefix, params={name: bad}, headers=ADMIN)
            assert name in assert_error(r, 400, "invalid_request_error")["error"]["message"]


@both
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x", "config": {"type": "cloud"}}, "config.type"),
        ({"name": "x", "config": {"type": "self_hosted", "packages": {}}}, "config"),
        ({"name": "x", "metadata": {"k": 1}}, "metadata"),
        ({"name": "x", "scope": "galaxy"}, "scope"),
    ],
)
async def test_environment_create_rejects_bad_input(
    api: httpx.AsyncClient, prefix: str, body: dict[str, object], field: str
) -> None:
    r = await api.post(prefix, json=body, headers=ADMIN)
    assert field in assert_error(r, 400, "invalid_request_error")["error"]["message"]
    assert (await api.get(prefix, headers=ADMIN)).json()["data"] == []


async def test_delete_refuses_an_environment_with_unfinished_work(api: httpx.AsyncClient) -> None:
    env = await new_environment(api)
    wid = work_id(await enqueue(api, env))
    r = await api.delete(f"{A}/{env}", headers=ADMIN)
    assert_error(r, 409, "invalid_request_error")
    await api.post(f"{A}/{env}/work/{wid}/stop", json={"force": True}, headers=ADMIN)
    assert (await api.delete(f"{A}/{env}", headers=ADMIN)).status_code == 200


# -- sessions queued in environments (operator API) --


async def test_operator_sessions_go_to_their_environment(api: httpx.AsyncClient) -> None:
    env = await new_environment(api)
    sid = await enqueue(api, env, metadata={"k": "v"})
    session = (await api.get(f"/api/v1/sessions/{sid}", headers=ADMIN)).json()
    assert (session["queue"], session["environmentId"], session["metadata"]) == (
        env,
        env,
        {"k": "v"},
    )
    # Not an AgentFactory session: it stays in its environment's queue.
    assert (await api.get(f"{Q}/{env}/work", headers=ADMIN)).json()["data"][0]["id"] == work_id(sid)


async def test_operator_refuses_unknown_or_archived_environments(api: httpx.AsyncClient) -> None:
    unknown = "env_" + "0" * 32
    r = await api.post(
        "/api/v1/sessions", json={"prompt": "p", "environmentId": unknown}, headers=ADMIN
    )
    assert r.status_code == 404 and r.json() == {
        "error": "Not Found",
        "message": f"Environment {unknown} not found",
    }
    env = await new_environment(api)
    await api.post(f"{Q}/{env}/archive", headers=ADMIN)
    r = await api.post(
        "/api/v1/sessions", json={"prompt": "p", "environmentId": env}, headers=ADMIN
    )
    assert r.status_code == 400 and "archived" in r.json()["message"]
    env = await new_environment(api)
    for bad in (
        {"environmentId": "prod"},
        {"environmentId": env, "sessionId": "mine"},
        {"environmentId": env, "metadata": {"k": 1}},
        {"environmentId": env, "metadata": {"k" * 65: "v"}},
        {"environmentId": env, "metadata": {f"k{i}": "v" for i in range(17)}},
    ):
        r = await api.post("/api/v1/sessions", json={"prompt": "p", **bad}, headers=ADMIN)
        assert r.status_code == 400 and r.json()["error"] == "Bad Request"


# -- authentication and the envelope --


@both
async def test_missing_or_wrong_key_is_401(api: httpx.AsyncClient, prefix: str) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        r = await api.get(prefix, headers=headers)
        assert_error(r, 401, "authentication_error")


async def test_x_api_key_is_accepted_on_the_anthropic_path_only(api: httpx.AsyncClient) -> None:
    key = {"x-api-key": ADMIN["Authorization"].removeprefix("Bearer ")}
    assert (await api.get(A, headers=key)).status_code == 200
    assert_error(await api.get(Q, headers=key), 401, "authentication_error")


async def test_anthropic_beta_header_and_query_are_ignored(api: httpx.AsyncClient) -> None:
    headers = {
        **ADMIN,
        "anthropic-beta": "managed-agents-2026-04-01",
        "anthropic-version": "2026-10-21",
    }
    r = await api.get(A, params={"beta": "true"}, headers=headers)
    assert r.status_code == 200 and r.json()["data"] == []


@both
async def test_minted_keys_are_narrower(api: httpx.AsyncClient, prefix: str) -> None:
    env, other = await new_environment(api), await new_environment(api, "other")
    await enqueue(api, env)
    minted = await api.post("/api/v1/registration-tokens", json={"project": env}, headers=ADMIN)
    scoped = {"Authorization": f"Bearer {minted.json()['token']}"}
    wide = await api.post("/api/v1/registration-tokens", json={}, headers=ADMIN)
    org = {"Authorization": f"Bearer {wide.json()['token']}"}
    assert (await api.get(f"{prefix}/{env}/work/poll", headers=scoped)).json() is not None
    assert_error(
        await api.get(f"{prefix}/{other}/work/stats", headers=scoped), 403, "permission_error"
    )
    assert (await api.get(f"{prefix}/{other}/work/stats", headers=org)).status_code == 200
    # Environments themselves are the operator's: a worker key cannot manage them.
    assert_error(await api.get(prefix, headers=org), 403, "permission_error")
    assert_error(
        await api.post(prefix, json={"name": "x"}, headers=scoped), 403, "permission_error"
    )
    # The static AgentFactory worker key is not an environment key.
    r = await api.get(
        f"{prefix}/{env}/work/stats", headers={"Authorization": f"Bearer {WORKER_KEY}"}
    )
    assert_error(r, 401, "authentication_error")
    # A revoked token stops working.
    await api.delete(f"/api/v1/registration-tokens/{minted.json()['id']}", headers=ADMIN)
    assert_error(
        await api.get(f"{prefix}/{env}/work/stats", headers=scoped), 401, "authentication_error"
    )


@both
async def test_errors_echo_x_request_id(api: httpx.AsyncClient, prefix: str) -> None:
    r = await api.get(f"{prefix}/env_{'0' * 32}", headers={**ADMIN, "x-request-id": "trace-42"})
    body = assert_error(r, 404, "not_found_error")
    assert body["request_id"] == "trace-42" and r.headers["x-request-id"] == "trace-42"
    other = assert_error(
        await api.get(f"{prefix}/env_{'0' * 32}", headers=ADMIN), 404, "not_found_error"
    )
    assert other["request_id"] != "trace-42"


@both
async def test_unknown_routes_and_methods_use_the_environment_envelope(
    api: httpx.AsyncClient, prefix: str
) -> None:
    assert_error(await api.get(f"{prefix}/x/y/z/w/v", headers=ADMIN), 404, "not_found_error")
    assert_error(await api.put(prefix, headers=ADMIN), 405, "invalid_request_error")


async def test_other_protocols_keep_their_own_envelope(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/sessions")
    assert r.status_code == 401 and set(r.json()) == {"error", "message"}
    r = await api.get("/api/workers/wkr_x/poll")
    assert set(r.json()) == {"error", "message"}


async def test_each_path_reads_its_own_worker_id_header(api: httpx.AsyncClient) -> None:
    env = await new_environment(api)
    # The other protocol's header names nobody: not counted as a polling worker.
    await api.get(f"{A}/{env}/work/poll", headers={**ADMIN, "Worker-ID": "q-worker"})
    await api.get(f"{Q}/{env}/work/poll", headers={**ADMIN, "Anthropic-Worker-ID": "a-worker"})
    assert (await api.get(f"{A}/{env}/work/stats", headers=ADMIN)).json()["workers_polling"] == 0
    await api.get(f"{A}/{env}/work/poll", headers={**ADMIN, "Anthropic-Worker-ID": "a-worker"})
    await api.get(f"{Q}/{env}/work/poll", headers={**ADMIN, "Worker-ID": "q-worker"})
    assert (await api.get(f"{Q}/{env}/work/stats", headers=ADMIN)).json()["workers_polling"] == 2
