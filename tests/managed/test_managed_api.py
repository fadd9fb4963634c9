"""The managed-agents API's wire details and refusals, in-process on both databases: auth as
the environment work API does it, tenants kept apart, bad input refused with the field named
and nothing changed, terminated sessions refusing input, agents versioned."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.environments.helpers import assert_error
from tests.managed.fake_model import FakeModel, text, tool_calls
from tests.managed.helpers import (
    ADMIN,
    events_of,
    new_agent,
    new_environment,
    new_session,
    pending_calls,
    send,
    settle,
    tool_result,
    types,
    user_message,
)


async def token(api: httpx.AsyncClient, project: str | None) -> dict[str, str]:
    r = await api.post("/api/v1/registration-tokens", json={"project": project}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def test_agents_are_versioned(mapi: httpx.AsyncClient) -> None:
    agent = await new_agent(mapi, "first prompt", metadata={"team": "a"})
    assert (agent["type"], agent["version"], agent["model"]) == ("agent", 1, {"id": "claude-test"})
    assert agent["execution_identity"] == {"type": "service_account"}
    assert agent["skills"] == [] and agent["multiagent"] is None and agent["archived_at"] is None
    aid = agent["id"]
    r = await mapi.post(
        f"/v1/agents/{aid}",
        json={"version": 1, "system": "second prompt", "metadata": {"team": None, "x": "1"}},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["system"], r.json()["metadata"]) == (
        2,
        "second prompt",
        {"x": "1"},
    )
    # A writer that read version 1 is refused, and nothing changes.
    stale = await mapi.post(f"/v1/agents/{aid}", json={"version": 1, "name": "x"}, headers=ADMIN)
    assert_error(stale, 409, "invalid_request_error")
    old = await mapi.get(f"/v1/agents/{aid}", params={"version": 1}, headers=ADMIN)
    assert old.json()["system"] == "first prompt"
    latest = (await mapi.get(f"/v1/agents/{aid}", headers=ADMIN)).json()
    assert (latest["version"], latest["name"]) == (2, "tester")
    versions = (await mapi.get(f"/v1/agents/{aid}/versions", headers=ADMIN)).json()
    assert [v["version"] for v in versions["data"]] == [1, 2]
    # Sessions pin the version they were made with.
    env = await new_environment(mapi)
    pinned = await new_session(mapi, {"type": "agent", "id": aid, "version": 1}, env)  # type: ignore[arg-type]
    assert pinned["agent"]["system"] == "first prompt" and pinned["agent"]["version"] == 1
    archived = (await mapi.post(f"/v1/agents/{aid}/archive", headers=ADMIN)).json()
    assert archived["archived_at"] is not None
    listed = (await mapi.get("/v1/agents", headers=ADMIN)).json()
    assert aid not in [a["id"] for a in listed["data"]]
    listed = (
        await mapi.get("/v1/agents", params={"include_archived": "true"}, headers=ADMIN)
    ).json()
    assert aid in [a["id"] for a in listed["data"]]
    r = await mapi.post("/v1/sessions", json={"agent": aid, "environment_id": env}, headers=ADMIN)
    assert_error(r, 400, "invalid_request_error")
    assert "archived" in r.json()["error"]["message"]


async def test_agent_list_pages(mapi: httpx.AsyncClient) -> None:
    made = [(await new_agent(mapi, f"p{i}"))["id"] for i in range(3)]
    seen: list[str] = []
    page: dict[str, Any] = {"limit": 2}
    while True:
        body = (await mapi.get("/v1/agents", params=page, headers=ADMIN)).json()
        seen.extend(a["id"] for a in body["data"])
        if not body["next_page"]:
            break
        page["page"] = body["next_page"]
    assert seen == made


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "m"}, "name"),
        ({"name": "n"}, "model"),
        ({"name": "n", "model": {"speed": "fast"}}, "model.id"),
        ({"name": "n", "model": "m", "tools": [{"type": "bogus"}]}, "tools[0].type"),
        (
            {
                "name": "n",
                "model": "m",
                "tools": [{"type": "custom", "name": "x", "input_schema": {}}],
            },
            "tools[0].input_schema.type",
        ),
        (
            {
                "name": "n",
                "model": "m",
                "tools": [
                    {
                        "type": "agent_toolset_20260401",
                        "configs": [{"name": "bash", "permission_policy": {"type": "never"}}],
                    }
                ],
            },
            "tools[0].configs[0].permission_policy.type",
        ),
        ({"name": "n", "model": "m", "skills": [{"type": "custom", "skill_id": "s"}]}, "skills"),
        ({"name": "n", "model": "m", "multiagent": {"type": "coordinator"}}, "multiagent"),
        ({"name": "n", "model": "m", "metadata": {"k": 1}}, "metadata.k"),
        ({"name": "n", "model": "m", "colour": "red"}, "colour"),
        ({"name": "n\u0000", "model": "m"}, "name"),
    ],
)
async def test_bad_agents_are_refused_naming_the_field(
    mapi: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    r = await mapi.post("/v1/agents", json=body, headers=ADMIN)
    assert_error(r, 400, "invalid_request_error")
    assert r.json()["error"]["message"].startswith(field + ":"), r.json()
    assert (await mapi.get("/v1/agents", headers=ADMIN)).json()["data"] == []


async def test_auth_is_the_environment_apis(mapi: httpx.AsyncClient) -> None:
    assert_error(await mapi.get("/v1/agents"), 401, "authentication_error")
    r = await mapi.get("/v1/agents", headers={"Authorization": "Bearer nope"})
    assert_error(r, 401, "authentication_error")
    r = await mapi.get("/v1/agents", headers={"x-api-key": ADMIN["Authorization"].split()[1]})
    assert r.status_code == 200
    # The SDK's headers are accepted and ignored.
    r = await mapi.get(
        "/v1/agents",
        headers={**ADMIN, "anthropic-beta": "managed-agents-2026-04-01", "anthropic-version": "x"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"


async def test_a_key_limited_to_one_environment_sees_only_its_own(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script("tenants", text("hello"))
    env_a, env_b = await new_environment(mapi, "a"), await new_environment(mapi, "b")
    key_a, key_b = await token(mapi, env_a), await token(mapi, env_b)
    org_wide = await token(mapi, None)
    agent = await new_agent(mapi, system, headers=key_a)
    session = await new_session(mapi, agent["id"], env_a, "hi", headers=key_a)
    sid, aid = session["id"], agent["id"]
    await settle(mapi)
    foreign = [
        ("GET", f"/v1/agents/{aid}", None),
        ("POST", f"/v1/agents/{aid}", {"name": "stolen"}),
        ("POST", f"/v1/agents/{aid}/archive", None),
        ("GET", f"/v1/agents/{aid}/versions", None),
        ("GET", f"/v1/sessions/{sid}", None),
        ("POST", f"/v1/sessions/{sid}", {"title": "stolen"}),
        ("GET", f"/v1/sessions/{sid}/events", None),
        ("GET", f"/v1/sessions/{sid}/events/stream", None),
        ("POST", f"/v1/sessions/{sid}/events", {"events": [user_message("hi")]}),
        ("POST", f"/v1/sessions/{sid}/archive", None),
        ("DELETE", f"/v1/sessions/{sid}", None),
    ]
    for method, path, body in foreign:
        r = await mapi.request(method, path, json=body, headers=key_b)
        assert_error(r, 404, "not_found_error")
    # Nor can it make a session in the other environment, or with the other's agent.
    r = await mapi.post("/v1/sessions", json={"agent": aid, "environment_id": env_a}, headers=key_b)
    assert_error(r, 403, "permission_error")
    r = await mapi.post("/v1/sessions", json={"agent": aid, "environment_id": env_b}, headers=key_b)
    assert_error(r, 404, "not_found_error")
    assert (await mapi.get("/v1/sessions", headers=key_b)).json()["data"] == []
    assert (await mapi.get("/v1/agents", headers=key_b)).json()["data"] == []
    # Nothing changed; its own key, an org-wide key and the admin key see it.
    for headers in (key_a, org_wide, ADMIN):
        got = (await mapi.get(f"/v1/sessions/{sid}", headers=headers)).json()
        assert got["status"] == "idle" and got["title"] is None
        assert [
            s["id"] for s in (await mapi.get("/v1/sessions", headers=headers)).json()["data"]
        ] == [sid]
    assert (await mapi.get(f"/v1/agents/{aid}", headers=ADMIN)).json()["name"] == "tester"


@pytest.mark.parametrize(
    ("events", "field"),
    [
        ([{"type": "user.message"}], "events[0].content"),
        ([{"type": "user.message", "content": []}], "events[0].content"),
        ([{"type": "user.message", "content": [{"type": "video"}]}], "events[0].content[0].type"),
        ([{"type": "user.message", "content": [{"type": "text"}]}], "events[0].content[0].text"),
        ([{"type": "agent.message", "content": "x"}], "events[0].type"),
        ([{"type": "user.tool_result"}], "events[0].tool_use_id"),
        (
            [{"type": "user.tool_result", "tool_use_id": "sevt_x", "is_error": "no"}],
            "events[0].is_error",
        ),
        (
            [{"type": "user.tool_confirmation", "tool_use_id": "t", "result": "maybe"}],
            "events[0].result",
        ),
        ([{"type": "user.interrupt", "extra": 1}], "events[0].extra"),
        ([user_message("fine"), {"type": "nope"}], "events[1].type"),
        ([], "events"),
        ("not a list", "events"),
    ],
)
async def test_bad_events_are_refused_and_nothing_is_stored(
    mapi: httpx.AsyncClient, fake_model: FakeModel, events: Any, field: str
) -> None:
    system = fake_model.script("bad-events", text("hi"))
    env = await new_environment(mapi)
    sid = (await new_session(mapi, (await new_agent(mapi, system))["id"], env))["id"]
    r = await mapi.post(f"/v1/sessions/{sid}/events", json={"events": events}, headers=ADMIN)
    assert_error(r, 400, "invalid_request_error")
    assert r.json()["error"]["message"].startswith(field + ":"), r.json()
    assert await events_of(mapi, sid) == []


async def test_results_for_unknown_or_answered_calls_are_400_and_change_nothing(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script(
        "answers", tool_calls(("bash", {"command": "a"}), ("bash", {"command": "b"})), text("ok")
    )
    env = await new_environment(mapi)
    sid = (await new_session(mapi, (await new_agent(mapi, system))["id"], env, "go"))["id"]
    await settle(mapi)
    first, second = pending_calls(await events_of(mapi, sid))
    before = await events_of(mapi, sid)
    r = await send(mapi, sid, tool_result("sevt_unknown", "x"))
    assert_error(r, 400, "invalid_request_error")
    assert r.json()["error"]["message"].startswith("tool_use_id:")
    # A confirmation for a call that never asked for one.
    r = await send(
        mapi, sid, {"type": "user.tool_confirmation", "tool_use_id": first, "result": "allow"}
    )
    assert_error(r, 400, "invalid_request_error")
    # A send is all or nothing: the good result beside a bad one is not stored either.
    r = await send(mapi, sid, tool_result(first, "1"), tool_result("sevt_unknown", "x"))
    assert r.status_code == 400
    assert await events_of(mapi, sid) == before
    assert (await send(mapi, sid, tool_result(first, "1"))).status_code == 200
    again = await send(mapi, sid, tool_result(first, "1 again"))
    assert_error(again, 400, "invalid_request_error")
    assert "already answered" in again.json()["error"]["message"]
    assert (await send(mapi, sid, tool_result(second, "2"))).status_code == 200
    await settle(mapi)
    assert len(fake_model.seen("answers")) == 2


async def test_a_terminated_session_refuses_input_with_409(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script("ended", tool_calls(("bash", {"command": "x"})))
    env = await new_environment(mapi)
    sid = (await new_session(mapi, (await new_agent(mapi, system))["id"], env, "go"))["id"]
    await settle(mapi)
    (call,) = pending_calls(await events_of(mapi, sid))
    archived = await mapi.post(f"/v1/sessions/{sid}/archive", headers=ADMIN)
    assert archived.json()["status"] == "terminated" and archived.json()["archived_at"]
    assert types(await events_of(mapi, sid))[-1] == "session.status_terminated"
    for event in (user_message("more"), tool_result(call, "late")):
        assert_error(await send(mapi, sid, event), 409, "invalid_request_error")
    # Its queued work item is stopped: no worker will take it.
    work = f"/v1/environments/{env}/work/work_{sid.removeprefix('sess_')}"
    assert (await mapi.get(work, headers=ADMIN)).json()["state"] == "stopped"
    listed = (await mapi.get("/v1/sessions", headers=ADMIN)).json()["data"]
    assert sid not in [s["id"] for s in listed]
    r = await mapi.get("/v1/sessions", params={"include_archived": "true"}, headers=ADMIN)
    assert sid in [s["id"] for s in r.json()["data"]]


async def test_delete_and_operator_stop_end_a_session(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script("deleted", text("hi"))
    env = await new_environment(mapi)
    aid = (await new_agent(mapi, system))["id"]
    gone = (await new_session(mapi, aid, env))["id"]
    r = await mapi.delete(f"/v1/sessions/{gone}", headers=ADMIN)
    assert r.json() == {"id": gone, "type": "session_deleted"}
    assert_error(await mapi.get(f"/v1/sessions/{gone}", headers=ADMIN), 404, "not_found_error")
    assert_error(await mapi.delete(f"/v1/sessions/{gone}", headers=ADMIN), 404, "not_found_error")
    # An operator stop of the session row ends the managed session too.
    stopped = (await new_session(mapi, aid, env, "hi"))["id"]
    await settle(mapi)
    r = await mapi.post(
        f"/api/v1/sessions/{stopped}/stop", json={"reason": "enough"}, headers=ADMIN
    )
    assert r.status_code == 200 and r.json()["status"] == "stopped"
    got = (await mapi.get(f"/v1/sessions/{stopped}", headers=ADMIN)).json()
    assert got["status"] == "terminated"
    assert_error(await send(mapi, stopped, user_message("more")), 409, "invalid_request_error")


async def test_unknown_things_are_404_and_bad_queries_400(mapi: httpx.AsyncClient) -> None:
    env = await new_environment(mapi)
    missing = "sess_" + "0" * 32
    for method, path in (
        ("GET", f"/v1/sessions/{missing}"),
        ("GET", f"/v1/sessions/{missing}/events"),
        ("POST", f"/v1/sessions/{missing}/archive"),
        ("GET", "/v1/agents/agent_missing"),
    ):
        assert_error(await mapi.request(method, path, headers=ADMIN), 404, "not_found_error")
    r = await send(mapi, missing, user_message("x"))
    assert_error(r, 404, "not_found_error")
    r = await mapi.post(
        "/v1/sessions", json={"agent": "agent_missing", "environment_id": env}, headers=ADMIN
    )
    assert_error(r, 404, "not_found_error")
    aid = (await new_agent(mapi, "x"))["id"]
    r = await mapi.post(
        "/v1/sessions", json={"agent": aid, "environment_id": "env_" + "1" * 32}, headers=ADMIN
    )
    assert_error(r, 404, "not_found_error")
    for body, field in (
        ({"environment_id": env}, "agent"),
        ({"agent": aid}, "environment_id"),
        (
            {"agent": aid, "environment_id": env, "initial_events": [{"type": "user.interrupt"}]},
            "initial_events[0].type",
        ),
        (
            {"agent": aid, "environment_id": env, "resources": [{"type": "memory_store"}]},
            "resources[0].type",
        ),
        ({"agent": aid, "environment_id": env, "vault_ids": ["v"]}, "vault_ids"),
        ({"agent": {"type": "agent"}, "environment_id": env}, "agent.id"),
    ):
        r = await mapi.post("/v1/sessions", json=body, headers=ADMIN)
        assert_error(r, 400, "invalid_request_error")
        assert r.json()["error"]["message"].startswith(field + ":"), r.json()
    sid = (await new_session(mapi, aid, env))["id"]
    for params, field in (
        ({"page": "bogus"}, "page"),
        ({"order": "sideways"}, "order"),
        ({"limit": "0"}, "limit"),
        ({"types[]": "not a type"}, "types"),
        ({"created_at[gte]": "yesterday"}, "created_at[gte]"),
    ):
        r = await mapi.get(f"/v1/sessions/{sid}/events", params=params, headers=ADMIN)
        assert_error(r, 400, "invalid_request_error")
        assert r.json()["error"]["message"].startswith(field), r.json()
    r = await mapi.post(
        f"/v1/sessions/{sid}/events",
        content=b"{not json",
        headers={**ADMIN, "content-type": "application/json"},
    )
    assert_error(r, 400, "invalid_request_error")
    huge = {"events": [user_message("x" * (33 * 1024 * 1024))]}
    assert_error(
        await mapi.post(f"/v1/sessions/{sid}/events", json=huge, headers=ADMIN),
        413,
        "invalid_request_error",
    )


async def test_events_list_filters_orders_and_pages(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script("paging", text("one"), text("two"), text("three"))
    env = await new_environment(mapi)
    sid = (await new_session(mapi, (await new_agent(mapi, system))["id"], env, "a"))["id"]
    await settle(mapi)
    for word in ("b", "c"):
        await send(mapi, sid, user_message(word))
        await settle(mapi)
    everything = await events_of(mapi, sid)
    assert (
        types(everything)
        == [
            "user.message",
            "session.status_running",
            "agent.message",
            "session.status_idle",
        ]
        * 3
    )
    paged = await events_of(mapi, sid, limit=2)
    assert [e["id"] for e in paged] == [e["id"] for e in everything]
    newest = (
        await mapi.get(
            f"/v1/sessions/{sid}/events", params={"order": "desc", "limit": 1}, headers=ADMIN
        )
    ).json()
    assert newest["data"][0]["id"] == everything[-1]["id"] and newest["next_page"]
    older = (
        await mapi.get(
            f"/v1/sessions/{sid}/events",
            params={"order": "desc", "limit": 1, "page": newest["next_page"]},
            headers=ADMIN,
        )
    ).json()
    assert older["data"][0]["id"] == everything[-2]["id"]
    said = await events_of(mapi, sid, **{"types[]": ["user.message", "session.thread_status_idle"]})
    assert [e["content"][0]["text"] for e in said] == ["a", "b", "c"]
    session = (await mapi.get(f"/v1/sessions/{sid}", headers=ADMIN)).json()
    assert set(session) >= {
        "id",
        "type",
        "status",
        "environment_id",
        "agent",
        "resources",
        "metadata",
        "created_at",
        "updated_at",
        "outcome_evaluations",
        "stats",
        "usage",
        "vault_ids",
        "title",
        "archived_at",
    }
    assert session["agent"]["skills"] == [] and session["agent"]["multiagent"] is None


async def test_session_update_and_list_filters(mapi: httpx.AsyncClient) -> None:
    env = await new_environment(mapi)
    aid = (await new_agent(mapi, "x"))["id"]
    other = (await new_agent(mapi, "y"))["id"]
    first = (await new_session(mapi, aid, env, metadata={"k": "v"}))["id"]
    second = (await new_session(mapi, other, env))["id"]
    r = await mapi.post(
        f"/v1/sessions/{first}",
        json={"title": "named", "metadata": {"k": None, "n": "1"}},
        headers=ADMIN,
    )
    assert (r.json()["title"], r.json()["metadata"]) == ("named", {"n": "1"})
    r = await mapi.post(f"/v1/sessions/{first}", json={"vault_ids": ["v"]}, headers=ADMIN)
    assert_error(r, 400, "invalid_request_error")
    listed = (await mapi.get("/v1/sessions", headers=ADMIN)).json()["data"]
    assert [s["id"] for s in listed] == [second, first]  # newest first
    asc = (
        await mapi.get("/v1/sessions", params={"order": "asc", "limit": 1}, headers=ADMIN)
    ).json()
    assert [s["id"] for s in asc["data"]] == [first] and asc["next_page"]
    rest = (
        await mapi.get(
            "/v1/sessions", params={"order": "asc", "page": asc["next_page"]}, headers=ADMIN
        )
    ).json()
    assert [s["id"] for s in rest["data"]] == [second]
    by_agent = (await mapi.get("/v1/sessions", params={"agent_id": other}, headers=ADMIN)).json()
    assert [s["id"] for s in by_agent["data"]] == [second]
    by_status = (
        await mapi.get("/v1/sessions", params={"statuses[]": "running"}, headers=ADMIN)
    ).json()
    assert by_status["data"] == []
    r = await mapi.get("/v1/sessions", params={"statuses[]": "asleep"}, headers=ADMIN)
    assert_error(r, 400, "invalid_request_error")


async def test_the_routes_declare_their_bodies_in_the_openapi_document(
    mapi: httpx.AsyncClient,
) -> None:
    doc = (await mapi.get("/openapi.json")).json()
    paths = doc["paths"]
    for path, method, fields in (
        ("/v1/agents", "post", {"name", "model", "tools"}),
        ("/v1/agents/{agent_id}", "post", {"version", "system"}),
        ("/v1/sessions", "post", {"agent", "environment_id", "initial_events"}),
        ("/v1/sessions/{session_id}", "post", {"title", "metadata"}),
        ("/v1/sessions/{session_id}/events", "post", {"events"}),
    ):
        body = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]
        schema = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
        assert fields <= set(schema["properties"]), (path, schema)
    for path, method in (
        ("/v1/agents", "post"),
        ("/v1/agents/{agent_id}", "get"),
        ("/v1/sessions", "get"),
        ("/v1/sessions/{session_id}", "get"),
        ("/v1/sessions/{session_id}/events", "get"),
        ("/v1/sessions/{session_id}", "delete"),
    ):
        ok = paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in ok, (path, ok)
    stream = paths["/v1/sessions/{session_id}/events/stream"]["get"]["responses"]["200"]
    assert "text/event-stream" in stream["content"]
    for ref in ("AgentObject", "SessionObject", "EventList", "ModelConfig"):
        assert ref in doc["components"]["schemas"]
