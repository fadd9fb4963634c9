"""The agent loop's harder cases, in-process on both databases: model failures of every kind
become `session.error` and leave the session usable, interrupts (during a model call and
while calls wait), custom tools, tools the agent does not have, input that arrives during a
model call, the turn lease (one runner at a time, taken over after it runs out), and the
event stream."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopfloor.clock import ManualClock
from shopfloor.service.managed import state
from shopfloor.service.managed.scope import EVERYTHING
from shopfloor.service.managed.turns import TurnRunner
from tests.conftest import Backend, make_settings, running_app
from tests.environments.helpers import assert_error
from tests.managed.conftest import model_settings
from tests.managed.fake_model import (
    Fail,
    FakeModel,
    last_user_content,
    result_texts,
    text,
    tool_calls,
)
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
    turns_of,
    types,
    user_message,
)


async def start(api: httpx.AsyncClient, system: str, *first: str, **agent: Any) -> str:
    env = await new_environment(api)
    aid = (await new_agent(api, system, **agent))["id"]
    sid: str = (await new_session(api, aid, env, *first))["id"]
    return sid


def said(body: dict[str, Any]) -> str:
    return " ".join(b.get("text", "") for b in last_user_content(body))


ERRORS = [
    (Fail(500), "model_request_failed_error", "500"),
    (Fail(529), "model_overloaded_error", "529"),
    (Fail(429), "model_rate_limited_error", "429"),
    (Fail(200, b"<html>not json</html>"), "model_request_failed_error", "not JSON"),
    (
        Fail(200, b'{"content": [{"type": "tool_use", "name": "bash"}]}'),
        "model_request_failed_error",
        "tool_use block has no valid id",
    ),
    (Fail(200, b'{"content": "hello"}'), "model_request_failed_error", "no content list"),
]


@pytest.mark.parametrize(("failure", "kind", "words"), ERRORS)
async def test_a_failing_model_is_a_session_error_and_the_session_goes_on(
    mapi: httpx.AsyncClient, fake_model: FakeModel, failure: Fail, kind: str, words: str
) -> None:
    name = "fails-" + "".join(c for c in kind + words if c.isalnum())
    system = fake_model.script(
        name, lambda body: text("recovered") if "again" in said(body) else failure
    )
    sid = await start(mapi, system, "go")
    await settle(mapi)
    events = await events_of(mapi, sid)
    assert types(events) == [
        "user.message",
        "session.status_running",
        "session.error",
        "session.status_idle",
    ]
    error = events[2]["error"]
    assert error["type"] == kind and words in error["message"], error
    assert error["retry_status"] == {"type": "exhausted"}
    assert events[3]["stop_reason"] == {"type": "retries_exhausted"}
    assert (await mapi.get(f"/v1/sessions/{sid}", headers=ADMIN)).json()["status"] == "idle"
    # The session stays usable: the next message goes to the model with the first.
    assert (await send(mapi, sid, user_message("again"))).status_code == 200
    await settle(mapi)
    last = fake_model.seen(name)[-1].body
    assert last["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "go"}, {"type": "text", "text": "again"}],
        }
    ]
    assert types(await events_of(mapi, sid))[-2:] == ["agent.message", "session.status_idle"]


async def test_a_model_that_does_not_answer_in_time_is_a_session_error(
    backend: Backend, tmp_path: Path, clock: ManualClock, fake_model: FakeModel
) -> None:
    settings = make_settings(
        backend, tmp_path, **model_settings(fake_model, model_timeout_seconds=0.3)
    )
    system = fake_model.script("slow", Fail(200, b"{}", hang=5))
    async with running_app(settings, clock) as api:
        sid = await start(api, system, "go")
        await settle(api)
        error = [e for e in await events_of(api, sid) if e["type"] == "session.error"]
        assert "did not answer within 0.3 s" in error[0]["error"]["message"]


async def test_without_a_model_key_a_message_gets_an_error_naming_the_setting(
    backend: Backend,
    tmp_path: Path,
    clock: ManualClock,
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    settings = make_settings(backend, tmp_path, model_base_url=fake_model.url)
    async with running_app(settings, clock) as api:
        sid = await start(api, fake_model.script("nokey", text("never")), "go")
        await settle(api)
        events = await events_of(api, sid)
        (error,) = [e["error"] for e in events if e["type"] == "session.error"]
        assert "SHOPFLOOR_MODEL_API_KEY" in error["message"]
        assert fake_model.seen("nokey") == []
        assert types(events)[-1] == "session.status_idle"


async def test_an_interrupt_cancels_the_model_call(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    release = threading.Event()
    system = fake_model.script(
        "cut",
        lambda body: text("fresh") if "later" in said(body) else Fail(200, b"{}", release=release),
    )
    try:
        sid = await start(mapi, system, "go")
        await asyncio.to_thread(fake_model.wait_for, "cut", 1)
        r = await send(mapi, sid, {"type": "user.interrupt"})
        assert r.status_code == 200 and r.json()["data"][0]["type"] == "user.interrupt"
        async with asyncio.timeout(10):
            await settle(mapi)  # the call was cancelled, not waited out
        events = await events_of(mapi, sid)
        assert types(events)[-2:] == ["user.interrupt", "session.status_idle"]
        assert events[-1]["stop_reason"] == {"type": "end_turn"}
    finally:
        release.set()
    await send(mapi, sid, user_message("later"))
    await settle(mapi)
    (answer,) = [e for e in await events_of(mapi, sid) if e["type"] == "agent.message"]
    assert answer["content"][0]["text"] == "fresh"


async def test_an_interrupt_while_calls_wait_answers_them_for_the_model(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script(
        "stop-tools", tool_calls(("bash", {"command": "sleep 100"})), text("ok")
    )
    sid = await start(mapi, system, "go")
    await settle(mapi)
    (call,) = pending_calls(await events_of(mapi, sid))
    await send(mapi, sid, {"type": "user.interrupt"})
    assert (await mapi.get(f"/v1/sessions/{sid}", headers=ADMIN)).json()["status"] == "idle"
    assert_error(await send(mapi, sid, tool_result(call, "late")), 400, "invalid_request_error")
    await send(mapi, sid, user_message("do something else"))
    await settle(mapi)
    content = fake_model.seen("stop-tools")[-1].body["messages"][-1]["content"]
    assert content[0]["type"] == "tool_result" and content[0]["is_error"] is True
    assert result_texts(fake_model.seen("stop-tools")[-1].body) == ["interrupted by the user"]
    assert content[1] == {"type": "text", "text": "do something else"}


async def test_custom_tools_are_answered_by_the_client(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    lookup = {
        "type": "custom",
        "name": "lookup",
        "description": "Look a word up",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    system = fake_model.script("custom", tool_calls(("lookup", {"q": "cat"})), text("thanks"))
    sid = await start(mapi, system, "go", tools=[lookup])
    await settle(mapi)
    first = fake_model.seen("custom")[0].body
    assert first["tools"] == [
        {"name": "lookup", "input_schema": lookup["input_schema"], "description": "Look a word up"}
    ]
    events = await events_of(mapi, sid)
    (call,) = [e for e in events if e["type"] == "agent.custom_tool_use"]
    assert (call["name"], call["input"]) == ("lookup", {"q": "cat"})
    assert "evaluated_permission" not in call
    assert pending_calls(events) == [call["id"]]
    # A worker's result for it is refused: it is the client's to answer.
    assert_error(await send(mapi, sid, tool_result(call["id"], "x")), 400, "invalid_request_error")
    r = await send(
        mapi,
        sid,
        {
            "type": "user.custom_tool_result",
            "custom_tool_use_id": call["id"],
            "content": [{"type": "text", "text": "a pet"}],
        },
    )
    assert r.status_code == 200, r.text
    await settle(mapi)
    assert result_texts(fake_model.seen("custom")[1].body) == ["a pet"]


async def test_a_tool_the_agent_lacks_is_answered_with_an_error(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script("unknown-tool", tool_calls(("fly", {"to": "moon"})), text("sorry"))
    sid = await start(mapi, system, "go")
    await settle(mapi)
    assert "agent.tool_use" not in types(await events_of(mapi, sid))
    second = fake_model.seen("unknown-tool")[1].body
    assert result_texts(second) == ["unknown tool 'fly': this agent has no such tool"]
    assert (await mapi.get(f"/v1/sessions/{sid}", headers=ADMIN)).json()["status"] == "idle"


async def test_input_during_a_model_call_is_answered_in_the_same_turn(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    release = threading.Event()

    def first(body: dict[str, Any]) -> dict[str, Any] | Fail:
        if "also" in said(body):
            return text("both answered")
        release.wait(10)
        return text("first answer")

    system = fake_model.script("queued", first, first)
    try:
        sid = await start(mapi, system, "go")
        await asyncio.to_thread(fake_model.wait_for, "queued", 1)
        await send(mapi, sid, user_message("also this"))
    finally:
        release.set()
    await settle(mapi)
    requests = fake_model.seen("queued")
    assert len(requests) == 2
    assert [m["role"] for m in requests[1].body["messages"]] == ["user", "assistant", "user"]
    events = await events_of(mapi, sid)
    assert types(events).count("session.status_idle") == 1  # one turn
    assert [e["content"][0]["text"] for e in events if e["type"] == "agent.message"] == [
        "first answer",
        "both answered",
    ]


async def test_one_runner_at_a_time_drives_a_turn(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    """Two processes' runners kicked at once for one due turn: one claims the lease and
    calls the model; the other finds it held."""
    system = fake_model.script("fenced", text("once"))
    sid = await start(mapi, system)
    mine = turns_of(mapi)
    other = TurnRunner(mine.store, mine.clock, mine.notifier, mine.model)
    await mine.log.write(
        sid,
        lambda row, now: state.accept(
            row, now, [state.Input("user.message", {"content": [{"type": "text", "text": "hi"}]})]
        ),
    )
    mine.kick(sid)
    other.kick(sid)
    await asyncio.gather(mine.idle(), other.idle())
    assert len(fake_model.seen("fenced")) == 1
    assert types(await events_of(mapi, sid)).count("agent.message") == 1


async def test_a_turn_whose_runner_died_is_taken_over_once_its_lease_runs_out(
    mapi: httpx.AsyncClient, fake_model: FakeModel, clock: ManualClock
) -> None:
    system = fake_model.script("orphan", text("taken over"))
    sid = await start(mapi, system)
    runner = turns_of(mapi)
    message = state.Input("user.message", {"content": [{"type": "text", "text": "hi"}]})
    await runner.log.write(sid, lambda row, now: state.accept(row, now, [message]))

    def dead_claims(row: Any, now: int) -> state.Step:
        claimed = state.claim(row, now, "turns_dead", runner.lease_ms)
        assert claimed is not None
        return claimed[0]

    await runner.log.write(sid, dead_claims)  # a process claimed it, then died
    await runner.upkeep()
    await runner.idle()
    assert fake_model.seen("orphan") == []  # its lease still runs
    clock.advance(runner.lease_ms / 1000 + 1)
    await runner.upkeep()
    await runner.idle()
    (request,) = fake_model.seen("orphan")
    # The input the dead process had moved into the transcript is sent, once.
    assert request.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]
    assert types(await events_of(mapi, sid))[-1] == "session.status_idle"


async def test_the_stream_delivers_what_comes_after_it_opened_and_keeps_alive(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script("watched", text("seen live"))
    sid = await start(mapi, system, "before")
    await settle(mapi)
    managed = mapi.app.state.services.managed  # type: ignore[attr-defined]
    managed.keepalive_seconds = 0.05
    batches: AsyncIterator[list[Any]] = await managed.stream(sid, EVERYTHING)
    assert await anext(batches) == []  # nothing new: a keep-alive
    await send(mapi, sid, user_message("after"))
    await settle(mapi)
    seen: list[str] = []
    while "session.status_idle" not in seen:
        seen += [e.kind for e in await anext(batches)]
    assert seen == [
        "user.message",
        "session.status_running",
        "agent.message",
        "session.status_idle",
    ]
    await mapi.post(f"/v1/sessions/{sid}/archive", headers=ADMIN)
    last = await anext(batches)
    assert [e.kind for e in last] == ["session.status_terminated"]
    with pytest.raises(StopAsyncIteration):
        await anext(batches)  # a terminated session's stream ends
