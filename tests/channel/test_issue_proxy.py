"""`POST /api/issue-tracker-proxy` over a real server, backed by shopfloor's issue records."""

from __future__ import annotations

from typing import Any

import httpx

from tests.channel.conftest import Server, Worker, create_session, timeline


def call(worker: Worker, method: str, *args: Any) -> httpx.Response:
    return worker.post("/api/issue-tracker-proxy", {"method": method, "args": list(args)})


def test_get_issue_serves_a_serialized_issue_whose_state_matches_the_work_type(
    server: Server,
) -> None:
    admin = server.admin()
    create_session(
        admin,
        issueId="iss-1",
        issueIdentifier="ENG-1",
        title="Fix login",
        description="It fails",
        workType="development",
        projectName="web",
        labels=["provider:a2a"],
    )
    create_session(admin, issueId="iss-2", issueIdentifier="ENG-2", workType="research")
    worker = Worker(server.url)
    reply = call(worker, "getIssue", "ENG-1")
    assert reply.status_code == 200
    body = reply.json()
    assert body["success"] is True
    issue = body["data"]
    assert issue["id"] == "iss-1" and issue["identifier"] == "ENG-1"
    assert issue["title"] == "Fix login" and issue["description"] == "It fails"
    assert issue["state"]["name"] == "Backlog"  # development, as queued
    assert issue["labels"] == [{"id": "label-provider:a2a", "name": "provider:a2a"}]
    assert issue["team"]["key"] == "ENG" and issue["project"]["name"] == "web"
    assert issue["parent"] is None and issue["assignee"] is None
    assert call(worker, "getIssue", "iss-2").json()["data"]["state"]["name"] == "Icebox"
    assert call(worker, "getIssue", "iss-2").json()["data"]["labels"] == []
    assert call(worker, "isChildIssue", "iss-1").json() == {"success": True, "data": False}


def test_status_changes_and_comments_show_in_the_session_timeline(server: Server) -> None:
    admin = server.admin()
    sid = create_session(admin, issueId="iss-3", issueIdentifier="ENG-3", workType="development")[
        "sessionId"
    ]
    worker = Worker(server.url)
    worker.poll()
    worker.run(sid)
    reply = call(worker, "updateIssueStatus", "iss-3", "Started")
    assert reply.json()["data"]["state"]["name"] == "Started"
    assert call(worker, "getIssue", "ENG-3").json()["data"]["state"]["name"] == "Started"
    comment = call(worker, "createComment", "iss-3", "Diagnostics: all good").json()["data"]
    assert comment["body"] == "Diagnostics: all good"
    assert set(comment) == {"id", "body", "createdAt", "updatedAt"}
    assert call(worker, "unassignIssue", "iss-3").json()["success"] is True
    entries = {e["type"]: e["data"] for e in timeline(admin, sid)["activities"]}
    assert entries["issue-status"] == {"issueId": "iss-3", "from": "Backlog", "to": "Started"}
    assert entries["issue-comment"]["body"] == "Diagnostics: all good"
    assert "issue-unassign" in entries


def test_failures_use_the_proxy_envelope(server: Server) -> None:
    create_session(server.admin(), issueId="iss-4", issueIdentifier="ENG-4")
    worker = Worker(server.url)

    def error(reply: httpx.Response) -> tuple[int, str]:
        body = reply.json()
        assert body["success"] is False
        assert isinstance(body["error"]["message"], str)
        assert body["error"]["retryable"] is False
        return reply.status_code, body["error"]["code"]

    assert error(call(worker, "getTeam", "ENG")) == (501, "METHOD_NOT_FOUND")
    assert error(call(worker, "listProjectIssues", "web")) == (501, "METHOD_NOT_FOUND")
    assert error(call(worker, "dropDatabase")) == (400, "INVALID_METHOD")
    assert error(call(worker, "getIssue")) == (400, "INVALID_ARGS")
    assert error(call(worker, "createComment", "iss-4")) == (400, "INVALID_ARGS")
    assert error(call(worker, "getIssue", "ENG-404")) == (404, "PROXY_ERROR")
    bad_json = worker.http.post(
        "/api/issue-tracker-proxy", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert error(bad_json) == (400, "INVALID_JSON")
    # A NUL character, which PostgreSQL stores in no text column: was a 500 there.
    assert error(call(worker, "getIssue", "ENG\u0000-4")) == (400, "INVALID_ARGS")
    assert error(call(worker, "createComment", "iss-4", "a\u0000b")) == (400, "INVALID_ARGS")
    anonymous = httpx.post(f"{server.url}/api/issue-tracker-proxy", json={"method": "getIssue"})
    assert error(anonymous) == (401, "AUTH_ERROR")
    # Nothing changed by the failed calls.
    issue = call(worker, "getIssue", "iss-4").json()["data"]
    assert issue["state"]["name"] == "Backlog"
