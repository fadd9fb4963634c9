"""Managed sessions and the Veryfront routes keep organisations apart (issue 20): agents,
managed sessions, environments, Veryfront projects, workers, runs and conversations made with
an organisation's key are that organisation's; another organisation's key gets the protocol's
404 for them (403 for a project it may not use) and never lists them; the admin key sees
everything. In-process on both databases."""

from __future__ import annotations

from typing import Any

import httpx

from tests.agentfactory.helpers import ADMIN
from tests.platform.test_tenancy import key, new_org

A = "/v1"  # Anthropic's managed-agents path
Q = "/api/v1/cloud"  # Qoder's


async def _environment(api: httpx.AsyncClient, headers: dict[str, str]) -> str:
    r = await api.post(f"{A}/environments", json={"name": "e"}, headers=headers)
    assert r.status_code == 200, r.text
    env_id: str = r.json()["id"]
    return env_id


async def _agent(api: httpx.AsyncClient, headers: dict[str, str]) -> str:
    body = {"name": "a", "model": "claude-test", "system": "s", "tools": []}
    r = await api.post(f"{A}/agents", json=body, headers=headers)
    assert r.status_code == 200, r.text
    agent_id: str = r.json()["id"]
    return agent_id


async def _session(api: httpx.AsyncClient, headers: dict[str, str], agent: str, env: str) -> str:
    r = await api.post(
        f"{A}/sessions", json={"agent": agent, "environment_id": env}, headers=headers
    )
    assert r.status_code == 200, r.text
    session_id: str = r.json()["id"]
    return session_id


async def _ids(api: httpx.AsyncClient, path: str, headers: dict[str, str]) -> set[str]:
    r = await api.get(path, headers=headers)
    assert r.status_code == 200, r.text
    return {item["id"] for item in r.json()["data"]}


async def test_managed_agents_and_sessions_belong_to_their_organisation(
    api: httpx.AsyncClient,
) -> None:
    a = await new_org(api, "a")
    await new_org(api, "b")
    key_a, key_b = await key(api, "a"), await key(api, "b")
    env_a, env_b = await _environment(api, key_a), await _environment(api, key_b)
    agent_a, agent_b = await _agent(api, key_a), await _agent(api, key_b)
    sid_a = await _session(api, key_a, agent_a, env_a)
    sid_b = await _session(api, key_b, agent_b, env_b)
    # The session row is its environment's organisation's (the operator API says so).
    got = await api.get(f"/api/v1/sessions/{sid_a}", headers=key_a)
    assert got.status_code == 200 and got.json()["orgId"] == a
    assert (await api.get(f"/api/v1/sessions/{sid_a}", headers=key_b)).status_code == 404

    # B never sees A's agent or session, on either dialect, whatever it tries.
    for prefix in (A, Q):
        for method, path, body in (
            ("GET", f"/agents/{agent_a}", None),
            ("POST", f"/agents/{agent_a}", {"system": "mine"}),
            ("GET", f"/agents/{agent_a}/versions", None),
            ("POST", f"/agents/{agent_a}/archive", None),
            ("GET", f"/sessions/{sid_a}", None),
            ("POST", f"/sessions/{sid_a}", {"title": "mine"}),
            ("GET", f"/sessions/{sid_a}/events", None),
            ("GET", f"/sessions/{sid_a}/events/stream", None),
            ("POST", f"/sessions/{sid_a}/events", {"events": [{"type": "user.interrupt"}]}),
            ("GET", f"/sessions/{sid_a}/threads", None),
            ("POST", f"/sessions/{sid_a}/cancel", None),
            ("POST", f"/sessions/{sid_a}/archive", None),
            ("DELETE", f"/sessions/{sid_a}", None),
        ):
            r = await api.request(method, prefix + path, json=body, headers=key_b)
            assert r.status_code == 404, (prefix, method, path, r.status_code, r.text)
        assert await _ids(api, f"{prefix}/agents", key_b) == {agent_b}
        assert await _ids(api, f"{prefix}/sessions", key_b) == {sid_b}
    # B's key makes nothing with A's agent or in A's environment.
    r = await api.post(
        f"{A}/sessions", json={"agent": agent_a, "environment_id": env_b}, headers=key_b
    )
    assert r.status_code == 404, r.text
    r = await api.post(
        f"{A}/sessions", json={"agent": agent_b, "environment_id": env_a}, headers=key_b
    )
    assert r.status_code in (403, 404), r.text
    assert await _ids(api, f"{A}/sessions", key_b) == {sid_b}

    # A still has everything; the admin key sees both organisations'.
    assert (await api.get(f"{A}/agents/{agent_a}", headers=key_a)).json()["system"] == "s"
    r = await api.get(f"{A}/sessions/{sid_a}", headers=key_a)
    assert r.status_code == 200 and r.json()["title"] is None and r.json()["archived_at"] is None
    assert await _ids(api, f"{A}/sessions", key_a) == {sid_a}
    assert await _ids(api, f"{A}/sessions", ADMIN) >= {sid_a, sid_b}
    assert await _ids(api, f"{A}/agents", ADMIN) >= {agent_a, agent_b}
    assert (await api.get(f"{Q}/sessions/{sid_b}", headers=ADMIN)).status_code == 200


async def test_an_environment_key_of_another_organisation_reaches_nothing(
    api: httpx.AsyncClient,
) -> None:
    await new_org(api, "a"), await new_org(api, "b")
    key_a = await key(api, "a")
    env_a = await _environment(api, key_a)
    sid_a = await _session(api, key_a, await _agent(api, key_a), env_a)
    # A key of B naming A's environment as its project: refused, not a way in.
    stray = await key(api, "b", projects=[env_a])
    for path in (f"{A}/sessions/{sid_a}", f"{A}/sessions", f"{A}/agents"):
        assert (await api.get(path, headers=stray)).status_code == 403, path
    # A's own key limited to that environment works there.
    own = await key(api, "a", projects=[env_a])
    assert await _ids(api, f"{A}/sessions", own) == {sid_a}


# -- Veryfront --

KIND = "shopfloor-test"


async def _register(
    api: httpx.AsyncClient, headers: dict[str, str], project: str, worker_key: str
) -> dict[str, Any]:
    r = await api.post(
        f"/agent-workers/projects/{project}/workers",
        json={"implementation_kind": KIND, "worker_key": worker_key},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    registered: dict[str, Any] = r.json()
    return registered


async def _admit(
    api: httpx.AsyncClient, headers: dict[str, str], project: str, worker_key: str, **extra: Any
) -> httpx.Response:
    body = {
        "project_id": project,
        "input": "hello",
        "config": {
            "agent_admission": {
                "mode": "worker",
                "implementation_kind": KIND,
                "worker_key": worker_key,
            }
        },
        **extra,
    }
    return await api.post("/runs", json=body, headers=headers)


async def _claim(api: httpx.AsyncClient, worker: dict[str, Any]) -> dict[str, Any] | None:
    r = await api.post(
        f"/agent-workers/workers/{worker['worker']['id']}/claim",
        json={"lease_duration_seconds": 30},
        headers={"Authorization": f"Bearer {worker['token']}"},
    )
    assert r.status_code == 200, r.text
    run: dict[str, Any] | None = r.json()["run"]
    return run


async def test_veryfront_projects_workers_and_runs_belong_to_their_organisation(
    api: httpx.AsyncClient,
) -> None:
    await new_org(api, "a"), await new_org(api, "b")
    key_a, key_b = await key(api, "a"), await key(api, "b")
    # The same slug, and the same worker key, in two organisations: two projects, two workers.
    worker_a = await _register(api, key_a, "web", "w1")
    worker_b = await _register(api, key_b, "web", "w1")
    project_a = worker_a["worker"]["project_id"]
    project_b = worker_b["worker"]["project_id"]
    assert project_a != project_b and worker_a["worker"]["id"] != worker_b["worker"]["id"]
    # The same idempotency key too: two runs.
    idem = {"Idempotency-Key": "same"}
    r = await _admit(api, {**key_a, **idem}, "web", "w1")
    assert r.status_code == 202, r.text
    run_a = r.json()["run"]
    r = await _admit(api, {**key_b, **idem}, "web", "w1")
    assert r.status_code == 202 and r.json()["duplicate"] is False, r.text
    run_b = r.json()["run"]
    assert run_a["run_id"] != run_b["run_id"] and run_b["project_id"] == project_b
    # Each worker gets its own organisation's run only.
    assert (await _claim(api, worker_b))["run_id"] == run_b["run_id"]  # type: ignore[index]
    assert (await _claim(api, worker_b)) is None
    claimed = await _claim(api, worker_a)
    assert claimed is not None and claimed["run_id"] == run_a["run_id"]

    ra, wa = run_a["run_id"], worker_a["worker"]["id"]
    conv_a = claimed["conversation_id"]
    for method, path, body in (
        ("GET", f"/runs/{ra}", None),
        ("POST", f"/runs/{ra}/cancel", None),
        ("GET", f"/runs/{ra}/events", None),
        ("POST", f"/runs/{ra}/complete", {"status": "completed"}),
        ("GET", f"/conversations/{conv_a}/runs/{ra}", None),
        ("POST", f"/conversations/{conv_a}/runs/{ra}/events", {"events": [{"type": "X"}]}),
        ("POST", f"/agent-workers/workers/{wa}/heartbeat", None),
        ("DELETE", f"/agent-workers/workers/{wa}", None),
    ):
        r = await api.request(method, path, json=body, headers=key_b)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
    # A's project, named by its UUID: B may not use it, nor A B's.
    assert (await api.get(f"/projects/{project_a}/runs", headers=key_b)).status_code == 403
    assert (await _admit(api, key_b, project_a, "w1")).status_code == 403
    r = await api.post(
        f"/agent-workers/projects/{project_a}/workers",
        json={"implementation_kind": KIND, "worker_key": "w2"},
        headers=key_b,
    )
    assert r.status_code == 403
    assert (await api.get(f"/projects/{project_b}/runs", headers=key_a)).status_code == 403
    # By slug each sees its own project's runs; by UUID too once it exists.
    for headers, project, run in ((key_a, "web", ra), (key_b, project_b, run_b["run_id"])):
        r = await api.get(f"/projects/{project}/runs", headers=headers)
        assert [x["run_id"] for x in r.json()["data"]] == [run], r.text
    # The admin key reaches both.
    for run_id in (ra, run_b["run_id"]):
        assert (await api.get(f"/runs/{run_id}", headers=ADMIN)).status_code == 200
    r = await api.get(f"/projects/{project_b}/runs", headers=ADMIN)
    assert [x["run_id"] for x in r.json()["data"]] == [run_b["run_id"]]
    # The runs' session rows are their organisations' on the operator API.
    ids: list[set[str]] = []
    for headers in (key_a, key_b):
        page = (await api.get("/api/v1/sessions", headers=headers)).json()["sessions"]
        ids.append({s["sessionId"] for s in page})
    assert len(ids[0]) == len(ids[1]) == 1 and not ids[0] & ids[1]


async def test_veryfront_conversations_belong_to_their_organisation(
    api: httpx.AsyncClient,
) -> None:
    await new_org(api, "a"), await new_org(api, "b")
    key_a, key_b = await key(api, "a"), await key(api, "b")
    # A conversation in no project yet, and one in A's project "web".
    loose = await api.post("/conversations", json={"title": "t"}, headers=key_a)
    linked = await api.post("/conversations", json={"project_id": "web"}, headers=key_a)
    assert loose.status_code == linked.status_code == 201, loose.text + linked.text
    for conversation in (loose.json(), linked.json()):
        cid = conversation["id"]
        for method, path, body in (
            ("GET", f"/conversations/{cid}", None),
            ("PATCH", f"/conversations/{cid}", {"title": "mine"}),
            ("DELETE", f"/conversations/{cid}", None),
            ("GET", f"/conversations/{cid}/messages", None),
            ("POST", f"/conversations/{cid}/messages", {"role": "user", "content": "hi"}),
            ("GET", f"/conversations/{cid}/input-requests", None),
        ):
            r = await api.request(method, path, json=body, headers=key_b)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
        # Nor may B run anything in it.
        r = await _admit(api, key_b, "web", "w1", conversation_id=cid)
        assert r.status_code == 404, r.text
        got = await api.get(f"/conversations/{cid}", headers=key_a)
        assert got.status_code == 200 and got.json()["title"] == conversation["title"]
        assert (await api.get(f"/conversations/{cid}", headers=ADMIN)).status_code == 200
    # B's own "web" is another project than A's.
    mine = await api.post("/conversations", json={"project_id": "web"}, headers=key_b)
    assert mine.status_code == 201
    assert mine.json()["project_id"] != linked.json()["project_id"]
    # A's loose conversation is linked only to A's projects: B's UUID is refused even to A.
    r = await api.patch(
        f"/conversations/{loose.json()['id']}",
        json={"project_id": mine.json()["project_id"]},
        headers=key_a,
    )
    assert r.status_code == 403, r.text
