"""The per-session MCP endpoint in-process on both databases: JSON-RPC single and batch, the
memory tools, the error codes of rensei-platform.md §7.1, and who may call it."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.agentfactory.helpers import ADMIN
from tests.mcp.helpers import held_session, tenant


def rpc(method: str, params: dict[str, Any] | None = None, id: int | None = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if id is not None:
        message["id"] = id
    return message


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return rpc("tools/call", {"name": name, "arguments": arguments})


async def post(
    api: httpx.AsyncClient, session: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return await api.post(f"/api/mcp/{session}", json=body, headers=headers)


def payload(reply: httpx.Response) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    result = reply.json()["result"]
    assert result["isError"] is False
    found: dict[str, Any] = json.loads(result["content"][0]["text"])
    return found


async def test_initialize_list_and_notifications(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    session = await held_session(api, a)
    init = await post(api, session, rpc("initialize", {"protocolVersion": "2024-11-05"}), a.worker)
    assert init.json() == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {
            "protocolVersion": "2024-11-05",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "rensei-platform", "version": "0.1.0"},
        },
    }
    note = await post(api, session, rpc("notifications/initialized", id=None), a.worker)
    assert note.status_code == 202 and note.content == b""
    listed = await post(api, session, rpc("tools/list"), a.worker)
    names = [t["name"] for t in listed.json()["result"]["tools"]]
    assert names[:3] == ["af_memory_remember", "af_memory_recall", "af_memory_forget"]
    assert set(names[3:]) == {
        "submit-task",
        "get-task-status",
        "list-fleet",
        "get-cost-report",
        "forward-prompt",
        "stop-agent",
    }
    assert listed.json()["result"]["tools"][0]["inputSchema"]["required"] == ["content"]


async def test_remember_then_recall_in_another_session_of_the_project(
    api: httpx.AsyncClient,
) -> None:
    a = await tenant(api, "a")
    first, second = await held_session(api, a), await held_session(api, a)
    stored = payload(
        await post(
            api,
            first,
            call(
                "af_memory_remember",
                content="Deploys go through ops/deploy.sh",
                tags=["ops"],
                context={"orgId": "org_other", "projectId": "elsewhere"},
            ),
            a.worker,
        )
    )
    assert stored["stored"] is True and stored["id"].startswith(f"mem_{first}_")
    found = payload(await post(api, second, call("af_memory_recall", query="deploy"), a.worker))
    assert found["total"] == 1
    hit = found["results"][0]
    assert hit["content"] == "Deploys go through ops/deploy.sh" and hit["sessionId"] == first
    assert hit["tags"] == ["ops"] and hit["score"] > 0
    untagged = call("af_memory_recall", query="deploy", tags=["nope"])
    assert payload(await post(api, second, untagged, a.worker))["total"] == 0
    forgot = payload(await post(api, second, call("af_memory_forget", id=stored["id"]), a.worker))
    assert forgot == {"deleted": True, "id": stored["id"]}
    assert (
        payload(await post(api, second, call("af_memory_recall", query="deploy"), a.worker))[
            "results"
        ]
        == []
    )


async def test_memory_never_crosses_projects_or_organisations(api: httpx.AsyncClient) -> None:
    a, b = await tenant(api, "a"), await tenant(api, "b")
    web, api_project = await held_session(api, a, "web"), await held_session(api, a, "api")
    theirs = await held_session(api, b, "web")
    remember = call("af_memory_remember", content="the launch code is 1234")
    payload(await post(api, web, remember, a.worker))
    recall = call("af_memory_recall", query="launch code")
    assert payload(await post(api, api_project, recall, a.worker))["total"] == 0
    assert payload(await post(api, theirs, recall, b.worker))["total"] == 0
    # The key of the organisation reaches its sessions (as an operator's tool would).
    assert payload(await post(api, web, recall, a.key))["total"] == 1


async def test_only_the_holder_or_the_organisations_keys_may_call(api: httpx.AsyncClient) -> None:
    a, b = await tenant(api, "a"), await tenant(api, "b")
    session = await held_session(api, a)
    ping = rpc("ping")
    for headers in (b.worker, b.key):
        refused = await post(api, session, ping, headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "Forbidden"
    missing = await post(api, session, ping, {})
    assert missing.status_code == 401 and missing.json()["error"] == "Unauthorized"
    assert (await post(api, session, ping, {"Authorization": "Bearer nope"})).status_code == 401
    assert (await post(api, "sess_missing", ping, a.key)).status_code == 404
    # Another worker of the same organisation does not hold it.
    tokens = await api.post("/api/v1/registration-tokens", json={"org": "a"}, headers=ADMIN)
    other = await api.post(
        "/api/workers/register",
        json={"hostname": "x", "capacity": 1},
        headers={"Authorization": f"Bearer {tokens.json()['token']}"},
    )
    jwt = {"Authorization": f"Bearer {other.json()['runtimeToken']}"}
    assert (await post(api, session, ping, jwt)).status_code == 403
    assert (await post(api, session, ping, ADMIN)).status_code == 200
    # A project-limited key of the organisation reaches only its projects.
    minted = await api.post(
        "/api/org/a/keys", json={"name": "p", "projects": ["api"], "scopes": ["*"]}, headers=a.key
    )
    narrow = {"Authorization": f"Bearer {minted.json()['key']['fullKey']}"}
    assert (await post(api, session, ping, narrow)).status_code == 403


async def test_a_session_that_ended_refuses_its_former_holder(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    session = await held_session(api, a)
    done = await api.post(
        f"/api/sessions/{session}/status",
        json={"workerId": a.worker_id, "status": "completed"},
        headers=a.worker,
    )
    assert done.status_code == 200, done.text
    assert (await post(api, session, rpc("ping"), a.worker)).status_code == 403


async def test_batches_and_json_rpc_errors(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    session = await held_session(api, a)
    batch = [
        rpc("ping", id=1),
        rpc("notifications/initialized", id=None),
        rpc("nope", id=2),
        call("af_unknown"),
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": []},
        "junk",
    ]
    replies = (await post(api, session, batch, a.worker)).json()
    assert replies[0] == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert replies[1]["error"] == {"code": -32601, "message": "Method not found: nope"}
    assert replies[2]["error"]["code"] == -32601
    assert replies[3]["error"]["code"] == -32602 and replies[3]["id"] == 4
    assert replies[4] == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "Invalid Request: a message is a JSON object"},
    }
    only_notes = await post(api, session, [rpc("notifications/initialized", id=None)], a.worker)
    assert only_notes.status_code == 202
    bad = await api.post(f"/api/mcp/{session}", content=b"{oops", headers=a.worker)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == -32700
    assert (await post(api, session, [], a.worker)).json()["error"]["code"] == -32600
    assert (await post(api, session, {"id": 1}, a.worker)).status_code == 400


async def test_bad_tool_arguments_name_the_field(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    session = await held_session(api, a)

    async def error_of(body: dict[str, Any]) -> dict[str, Any]:
        reply = await post(api, session, body, a.worker)
        assert reply.status_code == 200, reply.text
        error: dict[str, Any] = reply.json()["error"]
        assert error["code"] == -32602
        return error

    assert "content" in (await error_of(call("af_memory_remember")))["message"]
    huge = call("af_memory_remember", content="x" * 16_001)
    assert "content: at most 16000" in (await error_of(huge))["message"]
    assert "tags" in (await error_of(call("af_memory_remember", content="c", tags="x")))["message"]
    many = call("af_memory_recall", query="q", max_results=500)
    assert "max_results" in (await error_of(many))["message"]
    assert "query" in (await error_of(call("af_memory_recall", query="  ")))["message"]
    # Nothing was stored by the refused calls.
    found = await post(api, session, call("af_memory_recall", query="x c"), a.worker)
    assert payload(found)["total"] == 0


async def test_get_and_an_oversized_body_are_refused(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    session = await held_session(api, a)
    assert (await api.get(f"/api/mcp/{session}", headers=a.worker)).status_code == 405
    big = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"x" * 2_000_000 + b'"}}'
    reply = await api.post(f"/api/mcp/{session}", content=big, headers=a.worker)
    assert reply.status_code == 413


async def test_a_session_token_reaches_only_its_session_while_held(
    api: httpx.AsyncClient,
) -> None:
    a, b = await tenant(api, "a"), await tenant(api, "b")
    session, other = await held_session(api, a), await held_session(api, a)
    minted = await api.post(f"/api/sessions/{session}/mcp-token", headers=a.worker)
    assert minted.status_code == 200, minted.text
    found = minted.json()
    assert found["url"] == f"http://shopfloor/api/mcp/{session}"
    agent = {"Authorization": f"Bearer {found['token']}"}
    assert (await post(api, session, rpc("ping"), agent)).status_code == 200
    # Not another session's endpoint, and no worker or operator route.
    assert (await post(api, other, rpc("ping"), agent)).status_code == 403
    assert (await api.get(f"/api/workers/{a.worker_id}/poll", headers=agent)).status_code == 401
    assert (await api.get("/api/v1/sessions", headers=agent)).status_code == 401
    # Only the holder mints one: another organisation's worker, the admin key, no key.
    theirs = await api.post(f"/api/sessions/{session}/mcp-token", headers=b.worker)
    assert theirs.status_code == 404
    assert (await api.post(f"/api/sessions/{session}/mcp-token", headers=ADMIN)).status_code == 401
    assert (await api.post(f"/api/sessions/{session}/mcp-token")).status_code == 401
    # When the session ends, the token stops working.
    await api.post(
        f"/api/sessions/{session}/status",
        json={"workerId": a.worker_id, "status": "completed"},
        headers=a.worker,
    )
    assert (await post(api, session, rpc("ping"), agent)).status_code == 403
    ended = await api.post(f"/api/sessions/{session}/mcp-token", headers=a.worker)
    assert ended.status_code == 403
