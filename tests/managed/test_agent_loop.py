"""The agent loop in-process, on both databases, with the stand-in Messages API: the model's
tool calls become events, results posted over HTTP go back to the model, and the session's
state, work item, usage and transcript follow. (The real SDK worker runs the same flows
against a real server in test_worker_e2e.py.)"""

from __future__ import annotations

import httpx

from tests.environments.helpers import work_id
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


async def test_a_turn_runs_tool_calls_to_an_end(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script(
        "basic",
        tool_calls(("bash", {"command": "echo hi"}), say="Let me look."),
        tool_calls(
            ("write", {"file_path": "a.txt", "content": "x"}), ("read", {"file_path": "a.txt"})
        ),
        text("All done."),
    )
    env = await new_environment(mapi)
    agent = await new_agent(mapi, system)
    created = await new_session(mapi, agent["id"], env, "please work", title="t1")
    sid = created["id"]
    assert created["status"] == "running" and created["environment_id"] == env
    assert created["agent"]["id"] == agent["id"] and created["agent"]["version"] == 1
    await settle(mapi)

    events = await events_of(mapi, sid)
    assert types(events) == [
        "user.message",
        "session.status_running",
        "agent.message",
        "agent.tool_use",
        "session.status_idle",
    ]
    call = events[3]
    assert (call["name"], call["input"], call["evaluated_permission"]) == (
        "bash",
        {"command": "echo hi"},
        "allow",
    )
    assert pending_calls(events) == [call["id"]]
    assert all(e["id"].startswith("sevt_") and e["processed_at"].endswith("Z") for e in events)
    # The first model call: the agent's model, system prompt and tools, and the message.
    (first,) = fake_model.seen("basic")
    assert first.body["model"] == "claude-test" and first.body["system"] == system
    assert [t["name"] for t in first.body["tools"]] == [
        "bash",
        "read",
        "write",
        "edit",
        "glob",
        "grep",
    ]
    assert first.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "please work"}]}
    ]
    # The SDK (2.x) sends its api_key as a Bearer token.
    assert first.headers["authorization"] == "Bearer test-model-key"
    # Its work item waits in the environment's queue.
    r = await mapi.get(f"/v1/environments/{env}/work/{work_id(sid)}", headers=ADMIN)
    assert r.json()["state"] == "queued" and r.json()["data"] == {"type": "session", "id": sid}

    r = await send(mapi, sid, tool_result(call["id"], "hi\n"))
    assert r.status_code == 200, r.text
    (stored,) = r.json()["data"]
    assert stored["type"] == "user.tool_result" and stored["tool_use_id"] == call["id"]
    await settle(mapi)
    second = fake_model.seen("basic")[1]
    toolu = first_reply_tool_id(second.body)
    assert second.body["messages"][-1] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": toolu,
                "content": [{"type": "text", "text": "hi\n"}],
            }
        ],
    }
    events = await events_of(mapi, sid)
    write, read = [e for e in events if e["type"] == "agent.tool_use"][1:]
    assert pending_calls(events) == [write["id"], read["id"]]
    # Results in any order; the model gets them in the order it asked.
    await send(mapi, sid, tool_result(read["id"], "x"))
    await settle(mapi)
    assert len(fake_model.seen("basic")) == 2  # still waiting for the write
    await send(mapi, sid, tool_result(write["id"], "wrote 1 bytes"))
    await settle(mapi)
    third = fake_model.seen("basic")[2]
    results = third.body["messages"][-1]["content"]
    assert [b["content"][0]["text"] for b in results] == ["wrote 1 bytes", "x"]

    events = await events_of(mapi, sid)
    assert types(events)[-2:] == ["agent.message", "session.status_idle"]
    assert events[-2]["content"] == [{"type": "text", "text": "All done."}]
    assert events[-1]["stop_reason"] == {"type": "end_turn"}
    got = (await mapi.get(f"/v1/sessions/{sid}", headers=ADMIN)).json()
    assert got["status"] == "idle"
    assert got["usage"] == {"input_tokens": 30, "output_tokens": 15}
    operator = (await mapi.get(f"/api/v1/sessions/{sid}", headers=ADMIN)).json()
    assert (operator["inputTokens"], operator["outputTokens"]) == (30, 15)
    assert operator["title"] == "t1" and operator["prompt"] == "please work"


def first_reply_tool_id(body: dict) -> str:  # type: ignore[type-arg]
    assistant = [m for m in body["messages"] if m["role"] == "assistant"][-1]
    ids = [b["id"] for b in assistant["content"] if b["type"] == "tool_use"]
    return str(ids[0])


async def test_a_message_for_a_session_without_a_live_item_queues_it_again(
    mapi: httpx.AsyncClient, fake_model: FakeModel
) -> None:
    system = fake_model.script("again", text("one"), text("two"))
    env = await new_environment(mapi)
    agent = await new_agent(mapi, system)
    sid = (await new_session(mapi, agent["id"], env, "first"))["id"]
    await settle(mapi)
    item = f"/v1/environments/{env}/work/{work_id(sid)}"
    # A worker takes the item, then stops it after the turn ended (as the SDK's does).
    r = await mapi.get(f"/v1/environments/{env}/work/poll", headers=ADMIN)
    assert r.json()["id"] == work_id(sid)
    await mapi.post(item + "/ack", headers=ADMIN)
    r = await mapi.post(item + "/stop", json={"force": True}, headers=ADMIN)
    assert r.json()["state"] == "stopped"

    assert (await send(mapi, sid, user_message("second"))).status_code == 200
    await settle(mapi)
    r = await mapi.get(item, headers=ADMIN)
    assert r.json()["state"] == "queued"
    second = fake_model.seen("again")[1]
    assert [m["role"] for m in second.body["messages"]] == ["user", "assistant", "user"]
    assert second.body["messages"][-1]["content"] == [{"type": "text", "text": "second"}]
    events = await events_of(mapi, sid)
    assert types(events).count("session.status_idle") == 2
    assert (await mapi.get(f"/v1/sessions/{sid}", headers=ADMIN)).json()["status"] == "idle"
