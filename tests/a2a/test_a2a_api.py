"""A2A in-process on both databases: the agent card, and JSON-RPC dispatch where a message
becomes a queued session whose task state follows it; every method across organisations."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx

from tests.agentfactory.helpers import ADMIN
from tests.mcp.helpers import bearer, tenant


def send(text: str, **metadata: Any) -> dict[str, Any]:
    message = {
        "kind": "message",
        "role": "user",
        "messageId": "m-1",
        "contextId": "ctx-1",
        "parts": [{"kind": "text", "text": text}],
        "metadata": metadata,
    }
    return {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": message}}


def method(name: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 2, "method": name, "params": params}


async def rpc(api: httpx.AsyncClient, body: Any, headers: dict[str, str]) -> dict[str, Any]:
    reply = await api.post("/api/a2a", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


async def test_the_card_lists_a_skill_per_work_type(api: httpx.AsyncClient) -> None:
    reply = await api.get("/.well-known/agent-card.json")
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "*"
    card = reply.json()
    assert card["@type"] == "AgentCard" and card["url"] == "http://shopfloor/api/a2a"
    assert "development" in [s["id"] for s in card["skills"]]
    assert card["capabilities"]["streaming"] is True
    await api.post("/api/v1/orgs", json={"slug": "acme", "name": "Acme"}, headers=ADMIN)
    org_card = (await api.get("/.well-known/agent-card.json?org=acme")).json()
    assert org_card["name"] == "shopfloor: Acme"
    assert (await api.get("/.well-known/agent-card.json?org=nobody")).status_code == 404


async def test_a_message_becomes_a_session_the_task_follows(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    sent = await rpc(api, send("Fix the flaky test\nin CI", projectName="web"), a.key)
    task = sent["result"]
    assert task["kind"] == "task" and task["status"]["state"] == "submitted"
    assert task["contextId"] == "ctx-1" and task["history"][0]["messageId"] == "m-1"
    session = (await api.get(f"/api/v1/sessions/{task['id']}", headers=a.key)).json()
    assert session["orgId"] == a.org_id and session["projectName"] == "web"
    polled = (await api.get(f"/api/workers/{a.worker_id}/poll", headers=a.worker)).json()
    assert polled["claimedSessionIds"] == [task["id"]]
    got = await rpc(api, method("tasks/get", id=task["id"]), a.key)
    assert got["result"]["status"]["state"] == "working"
    await api.post(
        f"/api/sessions/{task['id']}/status",
        json={"workerId": a.worker_id, "status": "completed"},
        headers=a.worker,
    )
    got = await rpc(api, method("tasks/get", taskId=task["id"]), a.key)
    assert got["result"]["status"]["state"] == "completed"
    again = await rpc(api, method("tasks/cancel", id=task["id"]), a.key)
    assert again["error"] == {"code": -32002, "message": "Task cannot be canceled"}


async def test_resubscribing_to_an_ended_task_streams_it_once(api: httpx.AsyncClient) -> None:
    a, b = await tenant(api, "a"), await tenant(api, "b")
    task = (await rpc(api, send("do it"), a.key))["result"]
    await rpc(api, method("tasks/cancel", id=task["id"]), a.key)
    reply = await api.post(
        "/api/a2a", json=method("tasks/resubscribe", id=task["id"]), headers=a.key
    )
    assert reply.headers["content-type"].startswith("text/event-stream")
    frames = [line for line in reply.text.splitlines() if line.startswith("data: ")]
    assert len(frames) == 1
    assert json.loads(frames[0][6:])["result"]["status"]["state"] == "canceled"
    # Another organisation gets the JSON-RPC error, not a stream.
    theirs = await api.post(
        "/api/a2a", json=method("tasks/resubscribe", id=task["id"]), headers=b.key
    )
    assert theirs.json()["error"]["code"] == -32001


async def test_a_stream_sends_a_state_that_lasted_less_than_a_poll(
    api: httpx.AsyncClient,
) -> None:
    """Claimed, running and completed within one poll interval of the stream: the working
    state still reaches the client (the stream follows the status history, not samples)."""
    a = await tenant(api, "a")
    task = (await rpc(api, send("quick one"), a.key))["result"]
    streaming = asyncio.create_task(
        api.post("/api/a2a", json=method("tasks/resubscribe", id=task["id"]), headers=a.key)
    )
    await asyncio.sleep(0.05)  # the stream has taken its place in the history
    polled = (await api.get(f"/api/workers/{a.worker_id}/poll", headers=a.worker)).json()
    assert polled["claimedSessionIds"] == [task["id"]]
    for status in ("running", "completed"):
        reported = await api.post(
            f"/api/sessions/{task['id']}/status",
            json={"workerId": a.worker_id, "status": status},
            headers=a.worker,
        )
        assert reported.status_code == 200, reported.text
    reply = await asyncio.wait_for(streaming, 30)
    results = [
        json.loads(line[6:])["result"]
        for line in reply.text.splitlines()
        if line.startswith("data: ")
    ]
    states = [r["status"]["state"] for r in results]
    assert "working" in states, states
    assert states[-1] == "completed" and results[-1]["final"] is True
    assert all(x != y for x, y in itertools.pairwise(states)), states
    assert [r.get("final") for r in results[1:-1]] == [False] * (len(results) - 2)


async def test_cancel_stops_the_session(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    task = (await rpc(api, send("do it", workType="research"), a.key))["result"]
    canceled = await rpc(api, method("tasks/cancel", id=task["id"]), a.key)
    assert canceled["result"]["status"]["state"] == "canceled"
    session = (await api.get(f"/api/v1/sessions/{task['id']}", headers=a.key)).json()
    assert session["status"] == "stopped" and session["workType"] == "research"


async def test_other_organisations_never_see_the_task(api: httpx.AsyncClient) -> None:
    a, b = await tenant(api, "a"), await tenant(api, "b")
    task = (await rpc(api, send("ours", projectName="web"), a.key))["result"]
    for name in ("tasks/get", "tasks/cancel"):
        refused = await rpc(api, method(name, id=task["id"]), b.key)
        assert refused["error"] == {"code": -32001, "message": "Task not found"}
    follow_up = send("and more")
    follow_up["params"]["message"]["taskId"] = task["id"]
    assert (await rpc(api, follow_up, b.key))["error"]["code"] == -32001
    # B's message queues in B's organisation, for B's workers only.
    theirs = (await rpc(api, send("theirs"), b.key))["result"]
    view = await api.get(f"/api/v1/sessions/{theirs['id']}", headers=a.key)
    assert view.status_code == 404
    polled = (await api.get(f"/api/workers/{a.worker_id}/poll", headers=a.worker)).json()
    assert polled["claimedSessionIds"] == [task["id"]]
    # A key limited to a project neither sees nor queues in others.
    minted = await api.post(
        "/api/org/a/keys", json={"name": "p", "projects": ["api"], "scopes": ["*"]}, headers=a.key
    )
    narrow = bearer(minted.json()["key"]["fullKey"])
    assert (await rpc(api, method("tasks/get", id=task["id"]), narrow))["error"]["code"] == -32001
    assert (await rpc(api, send("x", projectName="web"), narrow))["error"]["code"] == -32000


async def test_a_follow_up_message_reaches_the_worker(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    task = (await rpc(api, send("start"), a.key))["result"]
    await api.get(f"/api/workers/{a.worker_id}/poll", headers=a.worker)
    follow_up = send("also update the docs")
    follow_up["params"]["message"]["taskId"] = task["id"]
    assert (await rpc(api, follow_up, a.key))["result"]["id"] == task["id"]
    polled = (await api.get(f"/api/workers/{a.worker_id}/poll", headers=a.worker)).json()
    assert "also update the docs" in str(polled)


async def test_bad_calls_get_json_rpc_errors_and_change_nothing(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    missing = await api.post("/api/a2a", json=send("x"))
    assert missing.status_code == 401
    assert missing.json()["error"] == {"code": -32000, "message": "Unauthorized"}
    errors = {
        "no message": method("message/send"),
        "no text": method("message/send", message={"role": "user", "parts": []}),
        "bad skill": send("x", workType="dance"),
        "bad project": send("x", projectName=5),
        "no id": method("tasks/get"),
    }
    for why, body in errors.items():
        assert (await rpc(api, body, a.key))["error"]["code"] == -32602, why
    assert (await rpc(api, method("tasks/pushNotificationConfig/set"), a.key))["error"][
        "code"
    ] == -32601
    bad = await api.post("/api/a2a", content=b"[", headers=a.key)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == -32700
    listed = (await api.get("/api/v1/sessions", headers=a.key)).json()
    assert listed["sessions"] == []
    big = b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"x":"' + b"x" * 2_000_000 + b'"}}'
    too_big = await api.post("/api/a2a", content=big, headers=a.key)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == -32600
