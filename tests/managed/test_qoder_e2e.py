"""Qoder's clients for managed sessions against a real `shopfloor serve` under Qoder's prefix
(/api/v1/cloud), with the stand-in Messages API behind the agent loop:

- `qca-sdk` (pinned): `agents`, `sessions`, `sessions.events` (send, list, stream, the
  resumable stream) and `sessions.threads`, sync and async, parsed with the SDK's strict
  validation; its typed errors;
- a worker written with `qca` (tests/managed/qca_worker.py: poll, ack, heartbeat, the session,
  its tool calls run for real in a working directory, results posted) running a session's
  tool calls end to end;
- `qoder-agent-sdk` (pinned) in cloud mode: `query()` creating an agent and a session, sending
  a message and following the stream, then continuing the session with `after_id` (its turn
  told apart by `turn_id`), and retrying its message on the 409 of a busy session."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qca
from pydantic import BaseModel
from qca.managed.types import Agent, Session, SessionCancelResponse, SessionThread
from qoder_agent_sdk import QoderAgentOptions, ResultMessage, query
from qoder_agent_sdk.auth import AccessTokenAuthOptions
from qoder_agent_sdk.types import CloudAgentEventMessage

from tests.conftest import Backend
from tests.managed.e2e import Rig, wait_until
from tests.managed.fake_model import (
    FakeModel,
    last_user_content,
    result_texts,
    serve_fake_model,
    text,
    tool_calls,
)
from tests.managed.qca_worker import QcaWorker, running
from tests.processes.server import free_port

pytestmark = pytest.mark.slow
TOOLSET: Any = {"type": "agent_toolset_20260401", "enabled_tools": ["bash", "read", "write"]}
BUSY = "Session is currently processing a turn. Cancel the current turn or wait for completion."


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeModel]:
    with serve_fake_model() as f:
        yield f


@pytest.fixture(scope="module")
def qrig(fake: FakeModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("qoder-rig")
    backend = Backend("sqlite", f"sqlite:///{tmp / 'shopfloor.db'}", None)
    # qoder-agent-sdk reads the stream from a blocking thread that its query() waits for
    # at the end, until the next frame comes: pings every second keep that short.
    r = Rig(backend, fake, tmp / "data", tmp, free_port())
    r.extra["SHOPFLOOR_STREAM_KEEPALIVE_SECONDS"] = "1"
    r.start()
    try:
        yield r
    finally:
        r.stop()


def cloud(r: Rig) -> str:
    return r.url + "/api/v1/cloud"


def managed(r: Rig, key: str) -> qca.Managed:
    return qca.Managed(pat=key, base_url=cloud(r), max_retries=0, _strict_response_validation=True)


def async_managed(r: Rig, key: str) -> qca.AsyncManaged:
    return qca.AsyncManaged(
        pat=key, base_url=cloud(r), max_retries=0, _strict_response_validation=True
    )


def complete(model: BaseModel) -> None:
    """Every field the SDK's model declares came over the wire."""
    missing = set(type(model).model_fields) - model.model_fields_set
    assert not missing, f"{type(model).__name__} lacks {sorted(missing)}"


def message(words: str) -> Any:
    return {"type": "user.message", "content": [{"type": "text", "text": words}]}


def said(body: dict[str, Any]) -> str:
    return " ".join(b.get("text", "") for b in last_user_content(body) if "text" in b)


def until_turn_ends(stream: Any) -> list[Any]:
    """Events off a qca stream up to the idle that ends the turn."""
    seen = []
    for event in stream:
        seen.append(event)
        if event.type == "session.status_idle" and event.stop_reason.type != "requires_action":
            return seen
    raise AssertionError(f"the stream ended before the turn: {[e.type for e in seen]}")


# -- qca, sync, with the qca worker running the tool calls --


def test_qca_user_and_qca_worker_run_a_session_with_tool_calls(qrig: Rig, tmp_path: Path) -> None:
    r = qrig
    system = r.fake.script(
        "qca-worker",
        tool_calls(("bash", {"command": "echo from-qca-worker > made.txt; cat made.txt"})),
        tool_calls(
            ("write", {"file_path": "notes.txt", "content": "abc"}),
            ("read", {"file_path": "notes.txt"}),
        ),
        text("first turn done"),
        tool_calls(("bash", {"command": "cat notes.txt made.txt"})),
        text("second turn done"),
    )
    env_id, key = r.environment("qca-worker")
    workdir = tmp_path / "work"
    workdir.mkdir()
    user = managed(r, key)
    agent = user.agents.create(
        name="qca-worker",
        model={"id": "claude-sonnet-4-5", "context_window": 200000},
        system=system,
        tools=[TOOLSET],
        metadata={"team": "q"},
    )
    assert isinstance(agent, Agent)
    complete(agent)
    assert (agent.type, agent.version, agent.metadata) == ("agent", 1, {"team": "q"})
    assert agent.created_at is not None and agent.created_at.tzinfo is not None
    session = user.sessions.create(agent=agent.id, environment_id=env_id, title="with tools")
    assert isinstance(session, Session)
    complete(session)
    assert (session.status, session.environment_id, session.title) == ("idle", env_id, "with tools")
    assert session.agent is not None and session.agent.id == agent.id

    with running(QcaWorker(cloud(r), env_id, key, workdir, "qca-host-1")) as worker:
        with user.sessions.events.stream(session.id) as stream:
            sent = user.sessions.events.send(session.id, events=[message("make a file")])
            assert sent.data is not None and sent.data[0].type == "user.message"
            first = until_turn_ends(stream)
        assert [e.type for e in first if e.type.startswith(("agent.", "user."))] == [
            "user.message",
            "agent.tool_use",
            "user.tool_result",
            "agent.tool_use",
            "agent.tool_use",
            "user.tool_result",
            "user.tool_result",
            "agent.message",
        ]
        assert first[-1].stop_reason.type == "end_turn"
        # Every event of the turn carries the turn of the message that began it.
        assert {getattr(e, "turn_id", None) for e in first} == {sent.data[0].turn_id}
        assert (workdir / "made.txt").read_text() == "from-qca-worker\n"
        assert (workdir / "notes.txt").read_text() == "abc"
        seen = r.fake.seen("qca-worker")
        assert result_texts(seen[1].body) == ["from-qca-worker\n"]
        assert result_texts(seen[2].body) == ["wrote 3 characters", "abc"]
        # The worker stopped the item once the turn ended; a new message queues it again.
        wait_until("the item stopped", lambda: r.work_state(env_id, session.id) == "stopped")
        with user.sessions.events.stream(session.id) as stream:
            user.sessions.events.send(session.id, events=[message("show both")])
            second = until_turn_ends(stream)
        assert [e.content[0].text for e in second if e.type == "agent.message"] == [
            "second turn done"
        ]
        assert result_texts(r.fake.seen("qca-worker")[4].body) == ["abcfrom-qca-worker\n"]
        assert worker.errors == [] and len(worker.items) == 2
        assert [name for name, _ in worker.ran] == ["bash", "write", "read", "bash"]

    # The history, the threads and the session as qca reads them.
    history = list(user.sessions.events.list(session.id, limit=5))
    assert [e.id for e in history] == [e.id for e in first + second]  # over pages of 5
    after = list(user.sessions.events.list(session.id, after_id=first[-1].id))
    assert [e.id for e in after] == [e.id for e in second]
    threads = list(user.sessions.threads.list(session.id))
    assert len(threads) == 1 and isinstance(threads[0], SessionThread)
    complete(threads[0])
    thread = user.sessions.threads.retrieve(threads[0].id, session_id=session.id)
    assert (thread.session_id, thread.parent_thread_id, thread.status) == (session.id, None, "idle")
    on_thread = list(
        user.sessions.threads.events.list(threads[0].id, session_id=session.id, limit=1000)
    )
    assert [e.id for e in on_thread] == [e.id for e in history]
    got = user.sessions.retrieve(session.id)
    assert got.usage is not None and got.usage.input_tokens == 50 and got.usage.output_tokens == 25


def test_qca_errors_and_tenants(qrig: Rig) -> None:
    r = qrig
    system = r.fake.script("qca-errors", text("hi"))
    env_a, key_a = r.environment("qca-a")
    env_b, key_b = r.environment("qca-b")
    mine, theirs = managed(r, key_a), managed(r, key_b)
    agent = mine.agents.create(name="e", model="claude-test", system=system, tools=[])
    session = mine.sessions.create(agent=agent.id, environment_id=env_a)
    tid = "sthr_" + session.id.removeprefix("sess_")
    for call in (
        lambda: theirs.agents.retrieve(agent.id),
        lambda: theirs.sessions.retrieve(session.id),
        lambda: theirs.sessions.events.list(session.id),
        lambda: theirs.sessions.events.send(session.id, events=[message("x")]),
        lambda: theirs.sessions.events.stream(session.id),
        lambda: theirs.sessions.cancel(session.id),
        lambda: theirs.sessions.threads.list(session.id),
        lambda: theirs.sessions.threads.retrieve(tid, session_id=session.id),
        lambda: theirs.sessions.archive(session.id),
        lambda: theirs.sessions.delete(session.id),
    ):
        with pytest.raises(qca.NotFoundError) as caught:
            call()
        assert caught.value.type == "not_found_error"
    with pytest.raises(qca.PermissionDeniedError):
        theirs.sessions.create(agent=agent.id, environment_id=env_a)
    with pytest.raises(qca.AuthenticationError):
        managed(r, "rsp_live_forged").sessions.list()
    with pytest.raises(qca.BadRequestError) as bad:
        mine.sessions.create(agent=agent.id, environment_id=env_a, vault_ids=["v"])
    assert bad.value.body["error"]["message"].startswith("vault_ids:")
    with pytest.raises(qca.BadRequestError) as bad:
        mine.sessions.events.send(session.id, events=[{"type": "user.message"}])
    assert bad.value.body["error"]["message"].startswith("events[0].content:")
    assert [s.id for s in mine.sessions.list()] == [session.id]
    assert list(theirs.sessions.list()) == []
    deleted = mine.sessions.delete(session.id)
    assert (deleted.id, deleted.type) == (session.id, "session_deleted")
    with pytest.raises(qca.NotFoundError):
        mine.sessions.retrieve(session.id)
    assert env_b  # the other tenant's environment stays untouched


# -- qca, async --


async def test_qca_async_sessions_cancel_and_resume(qrig: Rig) -> None:
    r = qrig
    release = threading.Event()

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        if "slow" in said(body):
            release.wait(30)
            return text("too late")
        return text("answer to " + said(body))

    system = r.fake.script("qca-async", answer)
    env_id, key = r.environment("qca-async")
    async with async_managed(r, key) as user:
        agent = await user.agents.create(name="a", model="claude-test", system=system, tools=[])
        updated = await user.agents.update(agent.id, version=1, description="second")
        assert updated.version == 2
        versions = [v.version async for v in user.agents.versions.list(agent.id)]
        assert versions == [1, 2]
        session = await user.sessions.create(
            agent={"type": "agent", "id": agent.id, "version": 1}, environment_id=env_id
        )
        complete(session)
        stream = await user.sessions.events.stream(session.id)  # open before the send
        sent = await user.sessions.events.send(session.id, events=[message("one")])
        turn = sent.data[0].turn_id  # type: ignore[index]
        seen = []
        async for event in stream:
            seen.append(event)
            if event.type == "session.status_idle":
                break
        await stream.close()
        assert [e.type for e in seen] == [
            "user.message",
            "session.status_running",
            "agent.message",
            "session.status_idle",
        ]
        assert seen[2].content[0].text == "answer to one" and seen[-1].turn_id == turn
        checkpoint = stream.last_event_id
        assert checkpoint == seen[-1].id

        # A turn that hangs: a second message is Qoder's 409 (qca never retries it), and
        # the cancel ends the turn.
        await user.sessions.events.send(session.id, events=[message("slow")])
        try:
            await asyncio.to_thread(r.fake.wait_for, "qca-async", 2)
            with pytest.raises(qca.ConflictError) as busy:
                await user.sessions.events.send(session.id, events=[message("two")])
            assert busy.value.body["error"]["message"] == BUSY
            canceled = await user.sessions.cancel(session.id)
            assert isinstance(canceled, SessionCancelResponse)
            assert (canceled.id, canceled.type, canceled.status) == (
                session.id,
                "session",
                "canceling",
            )
        finally:
            release.set()
        idle = await user.sessions.cancel(session.id)  # between turns: a no-op
        assert idle.status == "canceling"

        # Resumed after the first turn's idle: the rest, as it was.
        resumed = user.sessions.events.resumable_stream(session.id, last_event_id=checkpoint)
        rest = []
        async for event in resumed:
            rest.append(event.type)
            if event.type == "session.status_idle":
                break
        await resumed.close()
        assert rest == [
            "user.message",
            "session.status_running",
            "user.interrupt",
            "session.status_idle",
        ]
        listed = [e.type async for e in user.sessions.events.list(session.id, limit=3)]
        assert listed == [e.type for e in seen] + rest
        archived = await user.sessions.archive(session.id)
        assert archived.status == "terminated"
        with pytest.raises(qca.ConflictError):
            await user.sessions.events.send(session.id, events=[message("more")])


# -- qoder-agent-sdk, cloud mode --


def options(key: str, cloud_agent: dict[str, Any]) -> QoderAgentOptions:
    return QoderAgentOptions(
        auth=AccessTokenAuthOptions(access_token=key),
        experimental_cloud_agent=cloud_agent,  # type: ignore[arg-type]
    )


async def run_query(prompt: str, opts: QoderAgentOptions) -> tuple[list[Any], ResultMessage]:
    messages = []
    async with asyncio.timeout(60):
        async for m in query(prompt=prompt, options=opts):
            messages.append(m)
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert len(results) == 1, messages
    return messages, results[0]


async def test_qoder_agent_sdk_creates_follows_resumes_and_retries(
    qrig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = qrig
    monkeypatch.setenv("QODER_CLOUD_AGENT_API_BASE", cloud(r))
    system = r.fake.script("qoder-sdk", lambda body: text("echo: " + said(body)))
    env_id, key = r.environment("qoder-sdk")
    create = {
        "agent": {"create": {"name": "qsdk", "model": "claude-test", "system": system}},
        "session": {"create": {"environment_id": env_id, "title": "from qoder-agent-sdk"}},
    }
    messages, result = await run_query("hello there", options(key, create))
    assert (result.subtype, result.is_error) == ("success", False)
    assert result.result == "echo: hello there"
    session_id = result.session_id
    events = [m for m in messages if isinstance(m, CloudAgentEventMessage)]
    assert [m.event for m in events] == [
        "user.message",
        "session.status_running",
        "agent.message",
        "session.status_idle",
    ]
    assert all(m.id == m.data["id"] and m.session_id == session_id for m in events)
    async with async_managed(r, key) as user:
        session = await user.sessions.retrieve(session_id)
        assert (session.title, session.environment_id) == ("from qoder-agent-sdk", env_id)

    # The same session again, its stream replayed from the first turn's message: the
    # first turn's events come back too, and the SDK tells its own turn apart by turn_id.
    resume = {"session": {"id": session_id}, "stream": {"after_id": events[0].id}}
    messages, result = await run_query("and again", options(key, resume))
    assert (result.is_error, result.result) == (False, "echo: and again")
    replayed = [m for m in messages if isinstance(m, CloudAgentEventMessage)]
    assert [m.id for m in replayed[:3]] == [m.id for m in events[1:]]
    assert [m.event for m in replayed[3:]] == [
        "user.message",
        "session.status_running",
        "agent.message",
        "session.status_idle",
    ]
    await retried_while_busy(r)


async def retried_while_busy(r: Rig) -> None:
    """Its message to a session whose turn runs is refused with the 409 it retries on; it
    gets its own turn once the first one ends."""
    release = threading.Event()

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        if "first" in said(body):
            release.wait(30)
        return text("done: " + said(body))

    system = r.fake.script("qoder-busy", answer)
    env_id, key = r.environment("qoder-busy")
    async with async_managed(r, key) as user:
        agent = await user.agents.create(name="b", model="claude-test", system=system, tools=[])
        session = await user.sessions.create(agent=agent.id, environment_id=env_id)
        await user.sessions.events.send(session.id, events=[message("first")])
    try:
        await asyncio.to_thread(r.fake.wait_for, "qoder-busy", 1)
        existing = options(key, {"session": {"id": session.id}})
        ask = asyncio.create_task(run_query("second", existing))
        # Its POST is refused with the message it retries on, so nothing of it is stored
        # while the first turn runs.
        await asyncio.sleep(1.5)
        assert not ask.done()
        async with async_managed(r, key) as user:
            said_so_far = [
                e.content[0].text
                async for e in user.sessions.events.list(session.id, types=["user.message"])
            ]
        assert said_so_far == ["first"]
    finally:
        release.set()
    _, result = await ask
    # The first turn's idle came on its stream too, but was not its turn's.
    assert (result.is_error, result.result) == (False, "done: second")
