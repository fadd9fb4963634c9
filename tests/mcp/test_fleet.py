"""The fleet operations (rensei-platform.md §7.3) in-process on both databases: as REST routes
under /api/mcp with an organisation's key, and as MCP tools of a session; each bounded to
the caller's organisation and project."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.agentfactory.helpers import ADMIN
from tests.mcp.helpers import bearer, held_session, tenant


async def tool(
    api: httpx.AsyncClient, session: str, headers: dict[str, str], name: str, **args: Any
) -> dict[str, Any]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": args},
    }
    reply = await api.post(f"/api/mcp/{session}", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


def payload(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["result"]["isError"] is False, reply
    found: dict[str, Any] = json.loads(reply["result"]["content"][0]["text"])
    return found


async def test_rest_submit_list_forward_stop_and_cost(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    submitted = await api.post(
        "/api/mcp/submit-task",
        json={"issueId": "ENG-7", "description": "Fix it", "workType": "qa", "priority": 2},
        headers=a.key,
    )
    assert submitted.status_code == 200, submitted.text
    task = submitted.json()
    assert task["submitted"] is True and task["status"] == "pending" and task["priority"] == 2
    listed = (await api.get("/api/mcp/list-fleet", headers=a.key)).json()
    assert [s["taskId"] for s in listed["sessions"]] == [task["taskId"]]
    early = await api.post(
        "/api/mcp/forward-prompt", json={"taskId": task["taskId"], "message": "hi"}, headers=a.key
    )
    assert early.status_code == 409
    await api.get(f"/api/workers/{a.worker_id}/poll", headers=a.worker)
    forwarded = await api.post(
        "/api/mcp/forward-prompt",
        json={"taskId": task["taskId"], "message": "also the docs"},
        headers=a.key,
    )
    assert forwarded.status_code == 200 and forwarded.json()["forwarded"] is True
    await api.post(
        f"/api/sessions/{task['taskId']}/status",
        json={"workerId": a.worker_id, "status": "running", "totalCostUsd": 0.5},
        headers=a.worker,
    )
    cost = (await api.get("/api/mcp/cost-report", headers=a.key)).json()
    assert cost["totalSessions"] == 1
    stopped = await api.post("/api/mcp/stop-agent", json={"taskId": task["taskId"]}, headers=a.key)
    assert stopped.json()["previousStatus"] == "running"
    assert stopped.json()["newStatus"] == "stopped"
    again = await api.post("/api/mcp/stop-agent", json={"taskId": task["taskId"]}, headers=a.key)
    assert again.status_code == 409
    running = (await api.get("/api/mcp/list-fleet?status=running", headers=a.key)).json()
    assert running["sessions"] == []


async def test_rest_routes_never_cross_organisations(api: httpx.AsyncClient) -> None:
    a, b = await tenant(api, "a"), await tenant(api, "b")
    task = (await api.post("/api/mcp/submit-task", json={"issueId": "ENG-1"}, headers=a.key)).json()
    ref = {"taskId": task["taskId"]}
    assert (await api.post("/api/mcp/stop-agent", json=ref, headers=b.key)).status_code == 404
    forward = {**ref, "message": "x"}
    refused = await api.post("/api/mcp/forward-prompt", json=forward, headers=b.key)
    assert refused.status_code == 404
    cost = await api.get(f"/api/mcp/cost-report?taskId={task['taskId']}", headers=b.key)
    assert cost.status_code == 404
    assert (await api.get("/api/mcp/list-fleet", headers=b.key)).json()["sessions"] == []
    assert (await api.get("/api/mcp/cost-report", headers=b.key)).json()["totalSessions"] == 0
    reader = await api.post(
        "/api/org/a/keys", json={"name": "r", "scopes": ["sessions:read"]}, headers=ADMIN
    )
    read_only = bearer(reader.json()["key"]["fullKey"])
    assert (await api.post("/api/mcp/stop-agent", json=ref, headers=read_only)).status_code == 403
    assert (await api.get("/api/mcp/list-fleet")).status_code == 401
    # The worker's runtime JWT is no key for these routes.
    assert (await api.get("/api/mcp/list-fleet", headers=a.worker)).status_code == 401


async def test_bad_input_names_the_field_and_queues_nothing(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    for body, field in (
        ({}, "issueId"),
        ({"issueId": "E-1", "priority": 9}, "priority"),
        ({"issueId": "E-1", "priority": "high"}, "priority"),
        ({"issueId": 5}, "issueId"),
        ({"issueId": "E-1", "workType": "w" * 65}, "workType"),
    ):
        reply = await api.post("/api/mcp/submit-task", json=body, headers=a.key)
        assert reply.status_code == 400 and reply.json()["message"].startswith(field), reply.text
    bad = await api.get("/api/mcp/list-fleet?limit=0", headers=a.key)
    assert bad.status_code == 400 and "limit" in bad.json()["message"]
    bad = await api.get("/api/mcp/list-fleet?status=sleeping", headers=a.key)
    assert bad.status_code == 400 and "status" in bad.json()["message"]
    assert (await api.get("/api/mcp/list-fleet", headers=a.key)).json()["sessions"] == []


async def test_fleet_tools_act_in_the_sessions_project(api: httpx.AsyncClient) -> None:
    a, b = await tenant(api, "a"), await tenant(api, "b")
    session = await held_session(api, a, "web")
    other_project = await held_session(api, a, "api")
    theirs = await held_session(api, b, "web")
    made = payload(await tool(api, session, a.worker, "submit-task", issueId="ENG-9"))
    status = payload(await tool(api, session, a.worker, "get-task-status", taskId=made["taskId"]))
    assert status["projectName"] == "web" and status["status"] == "pending"
    listed = payload(await tool(api, session, a.worker, "list-fleet"))
    assert {s["taskId"] for s in listed["sessions"]} == {session, made["taskId"]}
    assert other_project not in str(listed)
    # Another project's or organisation's task is not found: a tool error, not a crash.
    for task_id in (other_project, theirs):
        missing = await tool(api, session, a.worker, "get-task-status", taskId=task_id)
        assert missing["result"]["isError"] is True
        assert missing["result"]["content"][0]["text"] == "Session not found"
    elsewhere = await tool(api, session, a.worker, "submit-task", issueId="X", projectName="api")
    assert elsewhere["error"]["code"] == -32602
    stopped = payload(await tool(api, session, a.worker, "stop-agent", taskId=made["taskId"]))
    assert stopped["newStatus"] == "stopped"
