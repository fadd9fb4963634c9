"""The managed-agents API under Qoder's prefix (/api/v1/cloud), in-process on both databases,
and what the two dialects share that the Qoder clients brought: turn ids on events, the
stream resumed after an event (after_id or Last-Event-ID) with `id:` on every frame, events
lists bounded by after_id/before_id, the cancel of a turn, a session's primary thread. Auth
is Bearer only on Qoder's path, a user message while a turn runs is the 409 qoder-agent-sdk
retries on, and every route keeps tenants apart on both prefixes."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import pytest

from shopfloor.service.errors import SessionBusy
from shopfloor.service.managed.scope import EVERYTHING
from tests.environments.helpers import assert_error
from tests.managed.fake_model import Fail, FakeModel, last_user_content, text, tool_calls
from tests.managed.helpers import (
    ADMIN,
    new_environment,
    pending_calls,
    settle,
    tool_result,
    types,
    user_message,
)

Q = "/api/v1/cloud"
A = "/v1"
PREFIXES = [pytest.param(Q, id="qoder"), pytest.param(A, id="anthropic")]
BUSY = "Session is currently processing a turn. Cancel the current turn or wait for completion."


async def agent(
    api: httpx.AsyncClient,
    system: str,
    prefix: str = Q,
    headers: dict[str, str] = ADMIN,
    **fields: Any,
) -> str:
    body = {"name": "q", "model": "claude-test", "system": system, "tools": [], **fields}
    r = await api.post(f"{prefix}/agents", json=body, headers=headers)
    assert r.status_code == 200, r.text
    agent_id: str = r.json()["id"]
    return agent_id


async def session(
    api: httpx.AsyncClient, agent_id: str, env: str, prefix: str = Q, **fields: Any
) -> dict[str, Any]:
    body = {"agent": agent_id, "environment_id": env, **fields}
    r = await api.post(f"{prefix}/sessions", json=body, headers=ADMIN)
    assert r.status_code == 200, r.text
    made: dict[str, Any] = r.json()
    return made


async def say(
    api: httpx.AsyncClient, sid: str, *events: dict[str, Any], prefix: str = Q
) -> httpx.Response:
    return await api.post(
        f"{prefix}/sessions/{sid}/events", json={"events": list(events)}, headers=ADMIN
    )


async def events(api: httpx.AsyncClient, sid: str, **params: Any) -> list[dict[str, Any]]:
    r = await api.get(f"{Q}/sessions/{sid}/events", params={"limit": 1000, **params}, headers=ADMIN)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def frames(body: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(event, id, data) of each frame of a stream's whole body."""
    out = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if fields:
            out.append((fields["event"], fields["id"], json.loads(fields["data"])))
    return out


async def token(api: httpx.AsyncClient, project: str | None) -> dict[str, str]:
    r = await api.post("/api/v1/registration-tokens", json={"project": project}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def test_the_qoder_path_takes_bearer_only_and_answers_in_its_envelope(
    mapi: httpx.AsyncClient,
) -> None:
    key = ADMIN["Authorization"].split()[1]
    r = await mapi.get(f"{Q}/agents", headers={"x-api-key": key})
    assert_error(r, 401, "authentication_error")
    assert (await mapi.get(f"{A}/agents", headers={"x-api-key": key})).status_code == 200
    assert (await mapi.get(f"{Q}/agents", headers=ADMIN)).status_code == 200
    r = await mapi.get(f"{Q}/sessions/sess_{'0' * 32}", headers={**ADMIN, "x-request-id": "rq-1"})
    body = assert_error(r, 404, "not_found_error")
    assert body["request_id"] == "rq-1" and r.headers["x-request-id"] == "rq-1"
    # The same agent and session are seen on both paths: one implementation.
    env = await new_environment(mapi)
    aid = await agent(mapi, "x")
    sid = (await session(mapi, aid, env))["id"]
    for prefix in (Q, A):
        got = (await mapi.get(f"{prefix}/sessions/{sid}", headers=ADMIN)).json()
        assert (got["id"], got["agent"]["id"], got["environment_variables"]) == (sid, aid, {})


async def test_qca_shaped_agents_and_sessions_are_taken(mapi: httpx.AsyncClient) -> None:
    """The shapes qca sends: a model config with context_window and an effort object, a
    toolset with enabled_tools/disallowed_tools and configs naming the tool in `type`."""
    toolset = {
        "type": "agent_toolset_20260401",
        "enabled_tools": ["bash", "read", "write"],
        "disallowed_tools": ["write"],
        "configs": [{"type": "read", "name": "read", "permission_policy": {"type": "always_ask"}}],
    }
    model = {"id": "claude-sonnet-4-5", "context_window": 200000, "effort": {"type": "low"}}
    r = await mapi.post(
        f"{Q}/agents", json={"name": "qca", "model": model, "tools": [toolset]}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    made = r.json()
    assert made["model"] == model and made["tools"][0]["enabled_tools"] == ["bash", "read", "write"]
    env = await new_environment(mapi)
    sid = (await session(mapi, made["id"], env, environment_variables={}, memory_store_ids=[]))[
        "id"
    ]
    # The toolset offers what its lists leave: bash, and read under always_ask.
    from shopfloor.service.managed.tools import toolbox

    row = await mapi.app.state.services.managed.get(sid, EVERYTHING)  # type: ignore[attr-defined]
    assert toolbox(row.agent).worker == {"bash": "allow", "read": "ask"}
    for body, field in (
        ({"name": "n", "model": {"id": "m", "context_window": 0}}, "model.context_window"),
        ({"name": "n", "model": {"id": "m", "effort": {"level": 1}}}, "model.effort.level"),
        (
            {"name": "n", "model": "m", "tools": [{**toolset, "enabled_tools": ["fly"]}]},
            "tools[0].enabled_tools[0]",
        ),
        (
            {
                "name": "n",
                "model": "m",
                "tools": [{"type": "agent_toolset_20260401", "configs": [{"type": "x"}]}],
            },
            "tools[0].configs[0].name",
        ),
    ):
        r = await mapi.post(f"{Q}/agents", json=body, headers=ADMIN)
        assert_error(r, 400, "invalid_request_error")
        assert r.json()["error"]["message"].startswith(field + ":"), r.json()
    for extra, field in (
        ({"environment_variables": {"A": "1"}}, "environment_variables"),
        ({"memory_store_ids": ["ms_1"]}, "memory_store_ids"),
    ):
        body = {"agent": made["id"], "environment_id": env, **extra}
        r = await mapi.post(f"{Q}/sessions", json=body, headers=ADMIN)
        assert_error(r, 400, "invalid_request_error")
        assert r.json()["error"]["message"].startswith(field + ":")


async def test_every_event_of_a_turn_carries_its_turn_id(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script(
        "turns", tool_calls(("bash", {"command": "ls"}), say="looking"), text("done"), text("2")
    )
    env = await new_environment(mapi)
    aid = await agent(mapi, system, tools=[{"type": "agent_toolset_20260401"}])
    sid = (await session(mapi, aid, env))["id"]
    # Between turns an event has no turn.
    r = await say(mapi, sid, {"type": "user.interrupt"})
    assert "turn_id" not in r.json()["data"][0]
    r = await say(mapi, sid, user_message("go"))
    first_turn = r.json()["data"][0]["turn_id"]
    assert first_turn.startswith("turn_")
    await settle(mapi)
    (call,) = pending_calls(await events(mapi, sid))
    r = await say(mapi, sid, tool_result(call, "README.md"))
    assert r.json()["data"][0]["turn_id"] == first_turn
    await settle(mapi)
    await say(mapi, sid, user_message("again"))
    await settle(mapi)
    got = await events(mapi, sid)
    assert types(got) == [
        "user.interrupt",
        "user.message",
        "session.status_running",
        "agent.message",
        "agent.tool_use",
        "session.status_idle",
        "user.tool_result",
        "session.status_running",
        "agent.message",
        "session.status_idle",
        "user.message",
        "session.status_running",
        "agent.message",
        "session.status_idle",
    ]
    turns = [e.get("turn_id") for e in got]
    second_turn = turns[-1]
    assert second_turn and second_turn != first_turn
    assert turns == [None] + [first_turn] * 9 + [second_turn] * 4
    row = await mapi.app.state.services.managed.get(sid, EVERYTHING)  # type: ignore[attr-defined]
    assert row.turn_id is None  # the turn ended with its idle


async def test_a_message_during_a_turn_is_409_on_qoders_path_and_queued_on_anthropics(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    release = threading.Event()

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        texts = " ".join(b.get("text", "") for b in last_user_content(body))
        if "wait" not in texts:
            release.wait(30)  # the first call runs until the test lets it answer
        return text("late" if "wait" in texts else "first")

    system = fake_model.script("busy", answer)
    env = await new_environment(mapi)
    sid = (await session(mapi, await agent(mapi, system), env))["id"]
    try:
        assert (await say(mapi, sid, user_message("hold"))).status_code == 200
        await asyncio.to_thread(fake_model.wait_for, "busy", 1)
        before = await events(mapi, sid)
        r = await say(mapi, sid, user_message("wait"))
        body = assert_error(r, 409, "invalid_request_error")
        assert body["error"]["message"] == BUSY == SessionBusy.MESSAGE
        assert await events(mapi, sid) == before  # nothing stored
        # The Anthropic path answers the message in the same turn.
        r = await say(mapi, sid, user_message("wait"), prefix=A)
        assert r.status_code == 200, r.text
    finally:
        release.set()
    await settle(mapi)
    got = await events(mapi, sid)
    assert types(got)[-3:] == ["agent.message", "agent.message", "session.status_idle"]
    assert [e["content"][0]["text"] for e in got[-3:-1]] == ["first", "late"]
    # Between turns the Qoder path takes a message again.
    assert (await say(mapi, sid, user_message("wait"))).status_code == 200
    await settle(mapi)


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_cancel_ends_a_running_turn_and_is_a_no_op_between_turns(
    mapi: httpx.AsyncClient, fake_model: FakeModel, prefix: str
) -> None:
    release = threading.Event()
    system = fake_model.script("cancel", Fail(200, b"{}", release=release))
    env = await new_environment(mapi)
    sid = (await session(mapi, await agent(mapi, system), env))["id"]
    url = f"{prefix}/sessions/{sid}/cancel"
    try:
        idle = await mapi.post(url, headers=ADMIN)
        assert (idle.status_code, idle.json()) == (
            200,
            {"id": sid, "type": "session", "status": "canceling"},
        )
        assert await events(mapi, sid) == []  # nothing written
        turn = (await say(mapi, sid, user_message("go"))).json()["data"][0]["turn_id"]
        await asyncio.to_thread(fake_model.wait_for, "cancel", 1)
        r = await mapi.post(url, headers=ADMIN)
        assert (r.status_code, r.json()) == (
            202,
            {"id": sid, "type": "session", "status": "canceling"},
        )
        async with asyncio.timeout(10):
            await settle(mapi)  # the model call was cancelled, not waited out
    finally:
        release.set()
    got = await events(mapi, sid)
    assert types(got)[-2:] == ["user.interrupt", "session.status_idle"]
    assert got[-1]["stop_reason"] == {"type": "end_turn"} and got[-1]["turn_id"] == turn
    assert (await mapi.get(f"{Q}/sessions/{sid}", headers=ADMIN)).json()["status"] == "idle"
    await mapi.post(f"{Q}/sessions/{sid}/archive", headers=ADMIN)
    assert_error(await mapi.post(url, headers=ADMIN), 409, "invalid_request_error")


async def test_the_stream_resumes_after_an_event_and_frames_carry_ids(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script("resume", text("one"), text("two"))
    env = await new_environment(mapi)
    sid = (await session(mapi, await agent(mapi, system), env))["id"]
    for word in ("a", "b"):
        await say(mapi, sid, user_message(word))
        await settle(mapi)
    await mapi.post(f"{Q}/sessions/{sid}/archive", headers=ADMIN)
    log = await events(mapi, sid)
    assert types(log)[-1] == "session.status_terminated"
    cut = log[3]["id"]  # the first turn's idle
    stream = f"{Q}/sessions/{sid}/events/stream"
    # qoder-agent-sdk names the event as after_id; qca (and SSE) in Last-Event-ID. A
    # terminated session's replay ends with the termination, so the whole body comes back.
    by_query = await mapi.get(stream, params={"after_id": cut}, headers=ADMIN)
    by_header = await mapi.get(stream, headers={**ADMIN, "Last-Event-ID": cut})
    thread = f"{Q}/sessions/{sid}/threads/sthr_{sid.removeprefix('sess_')}/stream"
    by_thread = await mapi.get(thread, headers={**ADMIN, "Last-Event-ID": cut})
    on_anthropic = await mapi.get(f"{A}/sessions/{sid}/events/stream", params={"after_id": cut})
    assert_error(on_anthropic, 401, "authentication_error")
    on_anthropic = await mapi.get(
        f"{A}/sessions/{sid}/events/stream", params={"after_id": cut}, headers=ADMIN
    )
    for r in (by_query, by_header, by_thread, on_anthropic):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        got = frames(r.text)
        assert [(name, fid) for name, fid, _ in got] == [(e["type"], e["id"]) for e in log[4:]]
        assert [data for _, _, data in got] == log[4:]
    for params, headers, name in (
        ({"after_id": "sevt_nope"}, {}, "after_id"),
        ({}, {"Last-Event-ID": "nope"}, "Last-Event-ID"),
        ({"after_id": "x" * 65}, {}, "after_id"),
    ):
        r = await mapi.get(stream, params=params, headers={**ADMIN, **headers})
        assert_error(r, 400, "invalid_request_error")
        assert r.json()["error"]["message"].startswith(name + ":"), r.json()


async def test_events_lists_are_bounded_by_after_id_and_before_id(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script("bounds", text("1"), text("2"), text("3"))
    env = await new_environment(mapi)
    sid = (await session(mapi, await agent(mapi, system), env))["id"]
    for word in ("a", "b", "c"):
        await say(mapi, sid, user_message(word))
        await settle(mapi)
    log = await events(mapi, sid)
    ids = [e["id"] for e in log]
    assert len(ids) == 12
    url = f"{Q}/sessions/{sid}/events"

    async def walk(**params: Any) -> list[str]:
        seen: list[str] = []
        query: dict[str, Any] = dict(params)
        while True:
            r = await mapi.get(url, params=query, headers=ADMIN)
            assert r.status_code == 200, r.text
            seen += [e["id"] for e in r.json()["data"]]
            if not r.json()["next_page"]:
                return seen
            # As qca follows pages: the cursor alone, the bounds dropped.
            query = {k: v for k, v in query.items() if k in ("limit", "order")}
            query["page"] = r.json()["next_page"]

    assert await walk(after_id=ids[2], limit=3) == ids[3:]
    assert await walk(before_id=ids[9], limit=2) == ids[:9]
    assert await walk(after_id=ids[1], before_id=ids[8], limit=2) == ids[2:8]
    assert await walk(after_id=ids[4], order="desc", limit=2) == ids[5:][::-1]
    thread = f"{Q}/sessions/{sid}/threads/sthr_{sid.removeprefix('sess_')}/events"
    r = await mapi.get(thread, params={"after_id": ids[10]}, headers=ADMIN)
    assert [e["id"] for e in r.json()["data"]] == ids[11:]
    for params, name in (
        ({"after_id": "sevt_unknown"}, "after_id"),
        ({"before_id": "sevt_unknown"}, "before_id"),
        ({"page": "ev_1", "after_id": ids[0]}, "page"),
        ({"page": "ev_1_2_3"}, "page"),
    ):
        r = await mapi.get(url, params=params, headers=ADMIN)
        assert_error(r, 400, "invalid_request_error")
        assert r.json()["error"]["message"].startswith(name + ":"), r.json()


async def test_a_session_has_its_primary_thread(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script("threads", text("hi"))
    env = await new_environment(mapi)
    aid = await agent(mapi, system)
    made = await session(mapi, aid, env, title="t")
    sid = made["id"]
    await say(mapi, sid, user_message("hello"))
    await settle(mapi)
    tid = "sthr_" + sid.removeprefix("sess_")
    listed = (await mapi.get(f"{Q}/sessions/{sid}/threads", headers=ADMIN)).json()
    assert [t["id"] for t in listed["data"]] == [tid] and listed["next_page"] is None
    thread = (await mapi.get(f"{Q}/sessions/{sid}/threads/{tid}", headers=ADMIN)).json()
    current = (await mapi.get(f"{Q}/sessions/{sid}", headers=ADMIN)).json()
    assert thread == listed["data"][0]
    assert thread["type"] == "session_thread" and thread["parent_thread_id"] is None
    assert thread["session_id"] == sid and thread["status"] == current["status"] == "idle"
    assert thread["agent"]["id"] == aid and thread["usage"] == current["usage"]
    assert thread["created_at"] == made["created_at"]
    r = await mapi.get(f"{Q}/sessions/{sid}/threads/{tid}/events", headers=ADMIN)
    assert r.json()["data"] == await events(mapi, sid)
    for method, path in (
        ("GET", f"{Q}/sessions/{sid}/threads/sthr_other"),
        ("GET", f"{Q}/sessions/{sid}/threads/sthr_other/events"),
        ("GET", f"{Q}/sessions/{sid}/threads/sthr_other/stream"),
        ("POST", f"{Q}/sessions/{sid}/threads/sthr_other/archive"),
    ):
        assert_error(await mapi.request(method, path, headers=ADMIN), 404, "not_found_error")
    # The primary thread ends with its session, not on its own; nothing changes.
    r = await mapi.post(f"{Q}/sessions/{sid}/threads/{tid}/archive", headers=ADMIN)
    assert_error(r, 400, "invalid_request_error")
    assert r.json()["error"]["message"].startswith("thread_id:")
    assert (await mapi.get(f"{Q}/sessions/{sid}", headers=ADMIN)).json()["status"] == "idle"


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_every_route_keeps_tenants_apart(
    mapi: httpx.AsyncClient, fake_model: FakeModel, prefix: str
) -> None:
    system = fake_model.script("tenants" + prefix.replace("/", "-"), text("hello"))
    env_a, env_b = await new_environment(mapi, "a"), await new_environment(mapi, "b")
    key_a, key_b = await token(mapi, env_a), await token(mapi, env_b)
    aid = await agent(mapi, system, prefix, headers=key_a)
    r = await mapi.post(
        f"{prefix}/sessions", json={"agent": aid, "environment_id": env_a}, headers=key_a
    )
    sid = r.json()["id"]
    await mapi.post(
        f"{prefix}/sessions/{sid}/events", json={"events": [user_message("hi")]}, headers=key_a
    )
    await settle(mapi)
    log = await events(mapi, sid)
    tid = "sthr_" + sid.removeprefix("sess_")
    s = f"{prefix}/sessions/{sid}"
    foreign = [
        ("GET", f"{prefix}/agents/{aid}", None),
        ("POST", f"{prefix}/agents/{aid}", {"name": "stolen"}),
        ("POST", f"{prefix}/agents/{aid}/archive", None),
        ("GET", f"{prefix}/agents/{aid}/versions", None),
        ("GET", s, None),
        ("POST", s, {"title": "stolen"}),
        ("GET", f"{s}/events", None),
        ("GET", f"{s}/events?after_id={log[0]['id']}", None),
        ("GET", f"{s}/events/stream", None),
        ("GET", f"{s}/events/stream?after_id={log[0]['id']}", None),
        ("POST", f"{s}/events", {"events": [user_message("hi")]}),
        ("POST", f"{s}/cancel", None),
        ("GET", f"{s}/threads", None),
        ("GET", f"{s}/threads/{tid}", None),
        ("POST", f"{s}/threads/{tid}/archive", None),
        ("GET", f"{s}/threads/{tid}/events", None),
        ("GET", f"{s}/threads/{tid}/stream", None),
        ("POST", f"{s}/archive", None),
        ("DELETE", s, None),
    ]
    for method, path, body in foreign:
        r = await mapi.request(method, path, json=body, headers=key_b)
        assert_error(r, 404, "not_found_error")
    r = await mapi.post(
        f"{prefix}/sessions", json={"agent": aid, "environment_id": env_a}, headers=key_b
    )
    assert_error(r, 403, "permission_error")
    assert (await mapi.get(f"{prefix}/sessions", headers=key_b)).json()["data"] == []
    assert (await mapi.get(f"{prefix}/agents", headers=key_b)).json()["data"] == []
    # Nothing changed; the owner's key sees it all.
    assert await events(mapi, sid) == log
    got = (await mapi.get(s, headers=key_a)).json()
    assert (got["status"], got["title"], got["archived_at"]) == ("idle", None, None)
    threads = (await mapi.get(f"{s}/threads", headers=key_a)).json()["data"]
    assert [t["id"] for t in threads] == [tid]
    assert (await mapi.get(f"{prefix}/agents/{aid}", headers=key_a)).json()["name"] == "q"


def test_the_stream_keepalive_is_a_setting() -> None:
    """SHOPFLOOR_STREAM_KEEPALIVE_SECONDS: qoder-agent-sdk's query() returns only once its
    stream's next frame arrives after the turn, so an operator may want pings sooner."""
    from shopfloor.config import Settings

    assert Settings().stream_keepalive_seconds == 15.0
    settings = Settings.from_env({"SHOPFLOOR_STREAM_KEEPALIVE_SECONDS": "1.5"})
    assert settings.stream_keepalive_seconds == 1.5
    assert settings.to_env()["SHOPFLOOR_STREAM_KEEPALIVE_SECONDS"] == "1.5"


async def test_the_qoder_routes_and_the_new_ones_declare_their_schemas(
    mapi: httpx.AsyncClient,
) -> None:
    doc = (await mapi.get("/openapi.json")).json()
    paths = doc["paths"]
    for prefix in (Q, A):
        for path, fields in (
            ("/agents", {"name", "model", "tools"}),
            ("/sessions", {"agent", "environment_id", "initial_events"}),
            ("/sessions/{session_id}/events", {"events"}),
        ):
            op = paths[prefix + path]["post"]
            body = op["requestBody"]["content"]["application/json"]["schema"]
            schema = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
            assert fields <= set(schema["properties"]), (prefix, path)
        for path, method, status, ref in (
            ("/sessions/{session_id}", "get", "200", "SessionObject"),
            ("/sessions/{session_id}/cancel", "post", "202", "SessionCanceled"),
            ("/sessions/{session_id}/cancel", "post", "200", "SessionCanceled"),
            ("/sessions/{session_id}/threads", "get", "200", "ThreadList"),
            ("/sessions/{session_id}/threads/{thread_id}", "get", "200", "ThreadObject"),
            ("/sessions/{session_id}/threads/{thread_id}/events", "get", "200", "EventList"),
        ):
            answer = paths[prefix + path][method]["responses"][status]
            assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/" + ref)
        for path in (
            "/sessions/{session_id}/events/stream",
            "/sessions/{session_id}/threads/{thread_id}/stream",
        ):
            stream = paths[prefix + path]["get"]
            assert "text/event-stream" in stream["responses"]["200"]["content"]
            assert "after_id" in [p["name"] for p in stream["parameters"]]
    event = doc["components"]["schemas"]["EventObject"]["properties"]
    assert "turn_id" in event
