"""The unmodified `anthropic` EnvironmentWorker (the pinned SDK and the newest) runs managed
sessions to the end against a real `shopfloor serve`, driven from the user side with the
SDK's own `client.beta.agents` / `client.beta.sessions` calls. The model is the stand-in
Messages API server; the tools really run, in the worker's working directory."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Backend
from tests.managed.e2e import (
    SDKS,
    Rig,
    find,
    idles,
    rig,
    sdk_worker,
    wait_until,
    worker_log,
)
from tests.managed.fake_model import (
    Fail,
    FakeModel,
    last_user_content,
    result_texts,
    serve_fake_model,
    text,
    tool_calls,
)

pytestmark = pytest.mark.slow
TOOLSET: dict[str, Any] = {"type": "agent_toolset_20260401"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeModel]:
    with serve_fake_model() as f:
        yield f


@pytest.fixture(scope="module")
def sqlite_rig(fake: FakeModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("rig")
    with rig(Backend("sqlite", f"sqlite:///{tmp / 'shopfloor.db'}", None), fake, tmp) as r:
        yield r


def message(text_: str) -> dict[str, Any]:
    return {"type": "user.message", "content": [{"type": "text", "text": text_}]}


def run_basic_session(r: Rig, which: str, name: str, workdir: Path) -> None:
    """user message -> bash -> write + read -> final message -> idle; then a second user
    message starts a new work item and turn."""
    system = r.fake.script(
        name,
        tool_calls(
            ("bash", {"command": "echo hello-from-worker > greeting.txt; cat greeting.txt"})
        ),
        tool_calls(
            ("write", {"file_path": "notes.txt", "content": "abc"}),
            ("read", {"file_path": "notes.txt"}),
        ),
        text("first turn done"),
        tool_calls(("bash", {"command": "cat notes.txt"})),
        text("second turn done"),
    )
    env_id, key = r.environment(name)
    user = r.user(key)
    agent = user.beta.agents.create(name=name, model="claude-test", system=system, tools=[TOOLSET])
    assert agent.version == 1 and user.beta.agents.retrieve(agent.id).name == name
    session = user.beta.sessions.create(
        agent=agent.id, environment_id=env_id, initial_events=[message("make a greeting")]
    )
    assert session.status == "running"
    with sdk_worker(r, which, env_id, key, workdir) as worker:
        # Watch the session live through the SDK's own stream until the turn ends.
        seen: list[str] = []
        with user.beta.sessions.events.stream(session.id) as stream:
            wait_until("the first turn to end", lambda: idles(user, session.id) >= 1, 90)
            for event in stream:
                seen.append(event.type)
                if event.type == "session.status_idle" and event.stop_reason.type == "end_turn":
                    break
        assert "agent.message" in seen, seen
        requests = r.fake.seen(name)
        assert len(requests) == 3, worker_log(worker)
        assert [t.strip() for t in result_texts(requests[1].body)] == ["hello-from-worker"]
        write_result, read_result = result_texts(requests[2].body)
        assert "3" in write_result and read_result.strip().endswith("abc")
        greeting = find(workdir, "greeting.txt")
        assert greeting is not None and greeting.read_text() == "hello-from-worker\n"
        # The worker stops its item once the session stayed idle for max_idle.
        wait_until("the work item to stop", lambda: r.work_state(env_id, session.id) == "stopped")
        assert user.beta.sessions.retrieve(session.id).status == "idle"

        sent = user.beta.sessions.events.send(session.id, events=[message("read it back")])
        assert [e.type for e in sent.data] == ["user.message"]
        wait_until("the second turn to end", lambda: idles(user, session.id) >= 2, 90)
        requests = r.fake.seen(name)
        assert [t.strip() for t in result_texts(requests[4].body)] == ["abc"]
        types = [e.type for e in user.beta.sessions.events.list(session.id, limit=1000)]
        assert types.count("agent.tool_use") == 4
        assert types.count("user.tool_result") == 4
        assert types.count("user.message") == 2
        # Filtered history, as the newest worker asks for it.
        calls = list(user.beta.sessions.events.list(session.id, types=["agent.tool_use"]))
        assert [c.name for c in calls] == ["bash", "write", "read", "bash"]
        done = user.beta.sessions.retrieve(session.id)
        assert done.status == "idle" and done.usage.input_tokens == 50


@pytest.mark.parametrize("which", SDKS)
def test_the_sdk_worker_runs_a_session_to_the_end(
    sqlite_rig: Rig, which: str, tmp_path: Path
) -> None:
    run_basic_session(sqlite_rig, which, f"basic-{which}", tmp_path / "work")


@pytest.mark.parametrize("which", SDKS)
def test_always_ask_runs_a_call_only_once_confirmed(
    sqlite_rig: Rig, which: str, tmp_path: Path
) -> None:
    r = sqlite_rig
    name = f"ask-{which}"
    system = r.fake.script(
        name,
        tool_calls(("bash", {"command": "echo yes > allowed.txt"})),
        tool_calls(("bash", {"command": "echo no > denied.txt"})),
        text("ok"),
    )
    env_id, key = r.environment(name)
    user = r.user(key)
    asking = {**TOOLSET, "default_config": {"permission_policy": {"type": "always_ask"}}}
    agent = user.beta.agents.create(name=name, model="claude-test", system=system, tools=[asking])
    session = user.beta.sessions.create(
        agent=agent.id, environment_id=env_id, initial_events=[message("go")]
    )
    workdir = tmp_path / "work"
    with sdk_worker(r, which, env_id, key, workdir):

        def asked(n: int) -> list[Any]:
            calls = list(user.beta.sessions.events.list(session.id, types=["agent.tool_use"]))
            return calls if len(calls) >= n else []

        (first,) = wait_until("the first call", lambda: asked(1))
        assert first.evaluated_permission == "ask"
        wait_until(
            "the worker to take the item", lambda: r.work_state(env_id, session.id) == "active"
        )
        threading.Event().wait(1.5)
        assert find(workdir, "allowed.txt") is None  # held until confirmed
        user.beta.sessions.events.send(
            session.id,
            events=[{"type": "user.tool_confirmation", "tool_use_id": first.id, "result": "allow"}],
        )
        wait_until("the allowed call to run", lambda: find(workdir, "allowed.txt"))
        second = wait_until("the second call", lambda: asked(2))[1]
        user.beta.sessions.events.send(
            session.id,
            events=[
                {
                    "type": "user.tool_confirmation",
                    "tool_use_id": second.id,
                    "result": "deny",
                    "deny_message": "not that file",
                }
            ],
        )
        wait_until("the turn to end", lambda: idles(user, session.id) >= 1)
        requests = r.fake.seen(name)
        assert result_texts(requests[2].body) == ["denied: not that file"]
        assert last_user_content(requests[2].body)[0]["is_error"] is True
        assert find(workdir, "denied.txt") is None


@pytest.mark.parametrize("which", SDKS)
def test_an_interrupt_ends_the_turn_and_the_session_goes_on(
    sqlite_rig: Rig, which: str, tmp_path: Path
) -> None:
    r = sqlite_rig
    name = f"interrupt-{which}"
    release = threading.Event()

    def slow_unless_resumed(body: dict[str, Any]) -> dict[str, Any] | Fail:
        said = " ".join(b.get("text", "") for b in last_user_content(body))
        if "carry on" in said:
            return text("resumed")
        return Fail(200, b"{}", release=release)  # a model call that hangs

    system = r.fake.script(name, tool_calls(("bash", {"command": "echo one"})), slow_unless_resumed)
    env_id, key = r.environment(name)
    user = r.user(key)
    agent = user.beta.agents.create(name=name, model="claude-test", system=system, tools=[TOOLSET])
    session = user.beta.sessions.create(
        agent=agent.id, environment_id=env_id, initial_events=[message("start")]
    )
    try:
        with sdk_worker(r, which, env_id, key, tmp_path / "work"):
            r.fake.wait_for(name, 2, 60)  # the tool ran; the second model call hangs
            user.beta.sessions.events.send(session.id, events=[{"type": "user.interrupt"}])
            wait_until("the interrupt to end the turn", lambda: idles(user, session.id) >= 1, 10)
            assert user.beta.sessions.retrieve(session.id).status == "idle"
            release.set()
            user.beta.sessions.events.send(session.id, events=[message("carry on")])
            wait_until("the next turn", lambda: idles(user, session.id) >= 2)
            messages = [
                e for e in user.beta.sessions.events.list(session.id) if e.type == "agent.message"
            ]
            assert messages[-1].content[0].text == "resumed"
    finally:
        release.set()


def test_the_stream_is_server_sent_events_with_an_event_line_on_every_frame(
    sqlite_rig: Rig,
) -> None:
    """Raw frames, as the SDK's decoder reads them: it drops a frame without `event:`."""
    r = sqlite_rig
    system = r.fake.script("frames", text("framed"))
    env_id, key = r.environment("frames")
    user = r.user(key)
    agent = user.beta.agents.create(name="frames", model="claude-test", system=system, tools=[])
    session = user.beta.sessions.create(agent=agent.id, environment_id=env_id)
    headers = {"Authorization": f"Bearer {key}"}
    frames: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream(
        "GET", f"{r.url}/v1/sessions/{session.id}/events/stream", headers=headers, timeout=30
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        user.beta.sessions.events.send(session.id, events=[message("hello")])
        event_name: str | None = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event_name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                assert event_name is not None, "a data line without an event line"
                frames.append((event_name, json.loads(line.removeprefix("data: "))))
                event_name = None
                if frames[-1][0] == "session.status_idle":
                    user.beta.sessions.archive(session.id)
        # The server ends the stream after the termination.
    names = [name for name, _ in frames]
    assert names == [
        "user.message",
        "session.status_running",
        "agent.message",
        "session.status_idle",
        "session.status_terminated",
    ]
    assert all(
        data["type"] == name and data["id"] and data["processed_at"] for name, data in frames
    )
