"""The Veryfront user side in-process (manual clock), on SQLite and PostgreSQL: conversations,
messages, input requests and the waiting state, cancel, listing, run events, completion
details; tenant isolation on every route and bad input answered by field."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from shopfloor.app import create_app
from shopfloor.clock import ManualClock
from shopfloor.config import Settings
from shopfloor.service.runs import project_ref
from tests.veryfront.helpers import ADMIN, bearer, claim, register

KIND = "user-side"


def error(reply: httpx.Response, status: int) -> str:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"detail", "error"}
    detail: str = body["detail"]
    return detail


async def token(api: httpx.AsyncClient, project: str) -> dict[str, str]:
    """A project token (rsp_live_) of `project`, as headers."""
    minted = await api.post("/api/v1/registration-tokens", headers=ADMIN, json={"project": project})
    assert minted.status_code == 201, minted.text
    return bearer(minted.json()["token"])


async def conversation(api: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> str:
    reply = await api.post("/conversations", headers=headers, json={"title": "t", **body})
    assert reply.status_code == 201, reply.text
    conversation_id: str = reply.json()["id"]
    return conversation_id


async def message(
    api: httpx.AsyncClient, headers: dict[str, str], conversation_id: str, text: str, **extra: Any
) -> dict[str, Any]:
    reply = await api.post(
        f"/conversations/{conversation_id}/messages",
        headers=headers,
        json={"role": "user", "parts": [{"type": "text", "text": text}], **extra},
    )
    assert reply.status_code in (200, 201), reply.text
    result: dict[str, Any] = reply.json()
    return result


async def conversation_run(
    api: httpx.AsyncClient, headers: dict[str, str], conversation_id: str, kind: str = KIND
) -> dict[str, Any]:
    reply = await api.post(
        "/runs",
        headers=headers,
        json={
            "kind": "agent",
            "owner": {"kind": "conversation", "id": conversation_id},
            "public_id": f"run_{uuid.uuid4()}",
            "request": {"mode": "agent", "agent_id": "a", "implementation_kind": kind},
        },
    )
    assert reply.status_code == 202, reply.text
    run: dict[str, Any] = reply.json()["run"]
    return run


async def running(
    api: httpx.AsyncClient, project: str = "alpha"
) -> tuple[dict[str, str], str, dict[str, Any], str]:
    """A conversation in `project` with a message and a claimed run: (project token,
    conversation id, the claimed run, the worker's token)."""
    headers = await token(api, project)
    conversation_id = await conversation(api, headers)
    await message(api, headers, conversation_id, "hello")
    kind = f"k-{uuid.uuid4().hex[:6]}"
    await conversation_run(api, headers, conversation_id, kind)
    worker_id, worker_token = await register(api, kind=kind, project=project)
    run = await claim(api, worker_id, worker_token)
    assert run is not None
    return headers, conversation_id, run, worker_token


FORM = {
    "kind": "form",
    "requested_responder_type": "human",
    "title": "Pick",
    "fields": [
        {"type": "text", "name": "city", "label": "City", "required": True},
        {"type": "number", "name": "days", "label": "Days"},
        {"type": "confirm", "name": "sure", "label": "Sure?"},
    ],
    "expires_at": "2026-01-01T00:10:00Z",  # the manual clock starts at 2026-01-01T00:00:00Z
}


async def ask(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    conversation_id: str,
    run: dict[str, Any],
    tool_call_id: str = "call-1",
    **overrides: Any,
) -> httpx.Response:
    body = {**FORM, "run_id": run["run_id"], "tool_call_id": tool_call_id, **overrides}
    return await api.post(
        f"/conversations/{conversation_id}/input-requests", headers=headers, json=body
    )


async def projection(api: httpx.AsyncClient, conversation_id: str, run_id: str) -> dict[str, Any]:
    reply = await api.get(f"/conversations/{conversation_id}/runs/{run_id}", headers=ADMIN)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


# -- conversations and messages --


async def test_conversation_takes_the_token_project_and_links_once(api: httpx.AsyncClient) -> None:
    alpha = await token(api, "alpha")
    created = (await api.post("/conversations", headers=alpha, json={})).json()
    assert created["project_id"] == project_ref("alpha").id
    assert (created["status"], created["type"], created["message_count"]) == ("active", "chat", 0)
    # The admin may create an unlinked one, then link it once.
    unlinked = (await api.post("/conversations", headers=ADMIN, json={"title": "x"})).json()
    assert unlinked["project_id"] is None
    path = f"/conversations/{unlinked['id']}"
    reply = await api.patch(path, headers=ADMIN, json={"project_id": "alpha"})
    assert reply.json()["project_id"] == project_ref("alpha").id
    reply = await api.patch(path, headers=ADMIN, json={"project_id": "beta"})
    assert error(reply, 409) == "Conversation is already linked to another project"
    same = await api.patch(path, headers=alpha, json={"project_id": project_ref("alpha").id})
    assert same.status_code == 200


async def test_messages_are_idempotent_ordered_and_paged(api: httpx.AsyncClient) -> None:
    headers = await token(api, "alpha")
    cid = await conversation(api, headers)
    first = await message(api, headers, cid, "one", idempotency_key="k1")
    again = await message(api, headers, cid, "one again", idempotency_key="k1")
    assert again["id"] == first["id"] and again["parts"][0]["text"] == "one"
    for i in range(2, 6):
        await message(api, headers, cid, f"m{i}", parent_id=first["id"])
    reply = await api.get(f"/conversations/{cid}/messages?limit=2", headers=headers)
    page = reply.json()
    assert [m["seq"] for m in page["data"]] == [4, 5]  # the newest two, oldest first
    assert page["page_info"] == {"self": None, "first": None, "next": None, "prev": "4"}
    older = await api.get(f"/conversations/{cid}/messages?limit=2&before=4", headers=headers)
    assert [m["seq"] for m in older.json()["data"]] == [2, 3]
    newer = await api.get(f"/conversations/{cid}/messages?limit=2&after=1", headers=headers)
    assert [m["seq"] for m in newer.json()["data"]] == [2, 3]
    assert newer.json()["page_info"]["next"] == "3"
    assert (await api.get(f"/conversations/{cid}", headers=headers)).json()["message_count"] == 5


async def test_every_message_part_type_is_kept(api: httpx.AsyncClient) -> None:
    headers = await token(api, "alpha")
    cid = await conversation(api, headers)
    upload = str(uuid.uuid4())
    parts = [
        {"type": "text", "text": "look", "extra": "dropped"},
        {"type": "image", "upload_id": upload, "media_type": "image/png"},
        {"type": "file", "upload_id": upload, "media_type": "text/plain", "filename": "a.txt"},
        {
            "type": "tool_call",
            "id": "c1",
            "name": "search",
            "input": {"q": "x"},
            "state": "completed",
        },
        {"type": "tool_result", "tool_call_id": "c1", "output": {"hits": 1}, "is_error": False},
        {"type": "reasoning", "text": "hmm"},
        {"type": "citation", "source_id": "s1", "url": "https://example.com"},
        {"type": "step_start"},
        {"type": "error", "code": "E1", "message": "bad"},
        {"type": "data", "name": "chart", "value": [1, 2]},
    ]
    reply = await api.post(
        f"/conversations/{cid}/messages",
        headers=headers,
        json={"role": "assistant", "parts": parts},
    )
    assert reply.status_code == 201
    kept = reply.json()["parts"]
    assert kept[0] == {"type": "text", "text": "look"}
    assert kept[1:] == parts[1:]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"parts": []}, "role must be one of: user, assistant, system, tool"),
        ({"role": "user"}, "parts is required"),
        ({"role": "user", "parts": {}}, "parts must be an array of at most 500 parts"),
        (
            {"role": "user", "parts": [{"type": "video"}]},
            "parts[0].type must be one of: text, image, file, tool_call, tool_result, "
            "reasoning, citation, step_start, error, data",
        ),
        ({"role": "user", "parts": [{"type": "text"}]}, "parts[0].text is required"),
        (
            {"role": "user", "parts": [{"type": "image", "upload_id": "x", "media_type": "a"}]},
            "parts[0].upload_id must be a UUID",
        ),
        (
            {
                "role": "user",
                "parts": [{"type": "tool_call", "id": "c", "name": "n", "input": {}, "state": "x"}],
            },
            "parts[0].state must be one of: streaming, pending, completed, error",
        ),
        ({"role": "user", "parts": [], "parent_id": "nope"}, "parent_id must be a UUID"),
        (
            {"role": "user", "parts": [], "parent_id": str(uuid.uuid4())},
            "parent_id must name a message of this conversation",
        ),
    ],
)
async def test_bad_messages_are_refused_by_field(
    api: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    headers = await token(api, "alpha")
    cid = await conversation(api, headers)
    reply = await api.post(f"/conversations/{cid}/messages", headers=headers, json=body)
    assert error(reply, 400) == detail
    assert (await api.get(f"/conversations/{cid}", headers=headers)).json()["message_count"] == 0


async def test_snapshot_is_built_from_the_messages_up_to_the_runs_own(
    api: httpx.AsyncClient,
) -> None:
    headers = await token(api, "alpha")
    cid = await conversation(api, headers)
    first = await message(api, headers, cid, "first question")
    reply = await api.post(
        f"/conversations/{cid}/messages",
        headers=headers,
        json={
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "c1",
                    "name": "search",
                    "input": {},
                    "state": "completed",
                },
                {"type": "tool_result", "tool_call_id": "c1", "output": "found"},
                {"type": "file", "upload_id": str(uuid.uuid4()), "media_type": "text/csv"},
            ],
        },
    )
    assert reply.status_code == 201
    second = await message(api, headers, cid, "second question")
    kind = f"k-{uuid.uuid4().hex[:6]}"
    admitted = await conversation_run(api, headers, cid, kind)
    assert admitted["message_id"] == second["id"]  # the newest user message
    await message(api, headers, cid, "after the run was admitted")
    worker_id, worker_token = await register(api, kind=kind, project="alpha")
    run = await claim(api, worker_id, worker_token)
    assert run is not None
    messages = run["request_snapshot"]["messages"]
    assert [m["id"] for m in messages] == [first["id"], reply.json()["id"], second["id"]]
    tool, file = messages[1]["parts"]
    assert tool == {
        "type": "tool-search",
        "toolCallId": "c1",
        "toolName": "search",
        "input": {},
        "state": "output-available",
        "output": "found",
    }
    assert (file["type"], file["mediaType"]) == ("file", "text/csv")
    assert messages[0]["createdAt"] == "2026-01-01T00:00:00.000Z"


# -- input requests and waiting_for_tool --


async def test_input_request_lifecycle_and_waiting_state(api: httpx.AsyncClient) -> None:
    headers, cid, run, worker_token = await running(api)
    # The worker itself may ask, with its own token: it holds the lease.
    reply = await ask(api, bearer(worker_token), cid, run)
    assert reply.status_code == 201, reply.text
    request = reply.json()
    assert (request["status"], request["description"], request["latest_response"]) == (
        "open",
        None,
        None,
    )
    assert request["fields"] == FORM["fields"]
    assert request["expires_at"] == "2026-01-01T00:10:00.000Z"
    again = await ask(api, headers, cid, run)
    assert (again.status_code, again.json()["id"]) == (200, request["id"])
    other = await ask(api, headers, cid, run, tool_call_id="call-2")
    assert error(other, 409) == "The run already waits for tool call call-1"

    waiting = await projection(api, cid, run["run_id"])
    assert (waiting["status"], waiting["waiting_tool_call_id"], waiting["waiting_tool_name"]) == (
        "waiting_for_tool",
        "call-1",
        "form_input",
    )
    canonical = (await api.get(f"/runs/{run['run_id']}", headers=headers)).json()
    assert (canonical["status"], canonical["waiting_reason"]) == ("waiting", "tool")

    path = f"/conversations/{cid}/input-requests/{request['id']}"
    bad = await api.post(f"{path}/responses", headers=headers, json={"values": {"days": 3}})
    assert error(bad, 400) == "values.city is required"
    bad = await api.post(f"{path}/responses", headers=headers, json={"values": {"city": 1}})
    assert error(bad, 400) == "values.city must be a string"
    bad = await api.post(f"{path}/responses", headers=headers, json={"values": {"town": "x"}})
    assert error(bad, 400) == "values.town is not a field of this input request"
    assert (await api.get(path, headers=headers)).json()["status"] == "open"

    values = {"city": "Oslo", "days": 2, "sure": True}
    answered = await api.post(f"{path}/responses", headers=headers, json={"values": values})
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["status"] == "submitted"
    assert body["latest_response"]["values"] == values
    assert body["latest_response"]["input_request_id"] == request["id"]
    twice = await api.post(f"{path}/responses", headers=headers, json={"values": values})
    assert error(twice, 409) == "Input request is submitted"
    assert error(await api.post(f"{path}/cancel", headers=headers), 409) == (
        "Input request is submitted"
    )

    resumed = await projection(api, cid, run["run_id"])
    assert (resumed["status"], resumed["waiting_tool_call_id"]) == ("running", None)
    assert resumed["latest_external_event_sequence"] == 0  # the server's events are not external
    events = (await api.get(f"/runs/{run['run_id']}/events", headers=headers)).json()["data"]
    assert [e["event_type"] for e in events] == ["CUSTOM", "TOOL_CALL_RESULT"]
    listed = await api.get(f"/conversations/{cid}/input-requests?status=open", headers=headers)
    assert listed.json() == {"data": []}
    listed = await api.get(f"/conversations/{cid}/input-requests", headers=headers)
    assert [r["status"] for r in listed.json()["data"]] == ["submitted"]


async def test_an_expired_input_request_releases_the_run(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    headers, cid, run, _ = await running(api)
    request = (await ask(api, headers, cid, run)).json()
    clock.advance(601)  # past expires_at
    path = f"/conversations/{cid}/input-requests/{request['id']}"
    expired = (await api.get(path, headers=headers)).json()
    assert (expired["status"], expired["expired_at"]) == ("expired", "2026-01-01T00:10:01.000Z")
    assert (await projection(api, cid, run["run_id"]))["waiting_tool_call_id"] is None
    late = await api.post(f"{path}/responses", headers=headers, json={"values": {"city": "x"}})
    assert error(late, 409) == "Input request is expired"


async def test_completing_a_waiting_run_cancels_its_open_requests(
    api: httpx.AsyncClient,
) -> None:
    headers, cid, run, worker_token = await running(api)
    request = (await ask(api, headers, cid, run)).json()
    done = await api.post(
        f"/runs/{run['run_id']}/complete",
        headers=bearer(worker_token),
        json={"status": "failed", "terminal_error_code": "GAVE_UP", "terminal_error_message": "no"},
    )
    assert done.json()["run"]["status"] == "failed"
    path = f"/conversations/{cid}/input-requests/{request['id']}"
    assert (await api.get(path, headers=headers)).json()["status"] == "cancelled"
    canonical = (await api.get(f"/runs/{run['run_id']}", headers=headers)).json()
    assert canonical["error"] == {"message": "no", "code": "GAVE_UP"}
    assert canonical["waiting_reason"] is None
    assert canonical["worker_session"] is None  # the worker never recorded one


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"kind": "survey"}, 'kind must be "form"'),
        ({"tool_call_id": ""}, "tool_call_id must be a string of 1-128 characters"),
        ({"run_id": None}, "run_id is required"),
        ({"title": ""}, "title must be a string of 1-256 characters"),
        ({"fields": []}, "fields must be an array of 1-100 fields"),
        (
            {"fields": [{"type": "slider", "name": "a", "label": "A"}]},
            "fields[0].type must be one of: text, email, url, password, number, textarea, "
            "select, radio, checkbox, confirm",
        ),
        (
            {"fields": [{"type": "text", "name": "", "label": "A"}]},
            "fields[0].name must be a string of 1-128 characters",
        ),
        (
            {"fields": [{"type": "select", "name": "a", "label": "A", "options": []}]},
            "fields[0].options must be an array of at least 1 option",
        ),
        (
            {"fields": [{"type": "checkbox", "name": "a", "label": "A", "defaultValue": "y"}]},
            "fields[0].defaultValue must be a boolean",
        ),
        (
            {"fields": [{"type": "text", "name": "a", "label": "A"}] * 2},
            "fields[1].name repeats the name 'a'",
        ),
        ({"expires_at": "tomorrow"}, "expires_at must be an ISO 8601 date-time with a time zone"),
        ({"expires_at": "2025-01-01T00:00:00Z"}, "expires_at must be in the future"),
        (
            {"requested_responder_type": "robot"},
            "requested_responder_type must be one of: human, agent, system",
        ),
    ],
)
async def test_bad_input_requests_are_refused_by_field(
    api: httpx.AsyncClient, change: dict[str, Any], detail: str
) -> None:
    headers, cid, run, _ = await running(api)
    assert error(await ask(api, headers, cid, run, **change), 400) == detail
    assert (await projection(api, cid, run["run_id"]))["status"] == "running"
    listed = await api.get(f"/conversations/{cid}/input-requests", headers=headers)
    assert listed.json() == {"data": []}


async def test_an_input_request_needs_a_running_run_of_that_conversation(
    api: httpx.AsyncClient,
) -> None:
    headers = await token(api, "alpha")
    cid = await conversation(api, headers)
    queued = await conversation_run(api, headers, cid)
    reply = await ask(api, headers, cid, queued)
    assert error(reply, 409) == "Run lease is not held; claim the run again"
    other = await conversation(api, headers)
    assert error(await ask(api, headers, other, queued), 404) == "Run not found"


# -- runs: cancel, list, events, completion details --


async def test_cancel_is_idempotent_and_stops_the_holder(api: httpx.AsyncClient) -> None:
    headers, _, run, worker_token = await running(api)
    session = await api.put(
        f"/agent-workers/workers/{run['lease_owner']}/runs/{run['run_id']}/session",
        headers=bearer(worker_token),
        json={"session_key": "s1", "status": "active"},
    )
    assert session.status_code == 200
    first = await api.post(f"/runs/{run['run_id']}/cancel", headers=headers)
    assert (first.json()["cancelled"], first.json()["run"]["status"]) == (True, "cancelled")
    again = await api.post(f"/runs/{run['run_id']}/cancel", headers=headers)
    assert (again.json()["cancelled"], again.json()["run"]["status"]) == (False, "cancelled")
    stored = (await api.get(f"/runs/{run['run_id']}", headers=headers)).json()
    assert (stored["worker_session"]["status"], stored["worker_session"]["ended_at"]) == (
        "cancelled",
        "2026-01-01T00:00:00.000Z",
    )
    complete = await api.post(
        f"/runs/{run['run_id']}/complete",
        headers=bearer(worker_token),
        json={"status": "completed"},
    )
    assert error(complete, 409) == "Run is already finished with another status"
    refused = await api.post(f"/runs/{run['run_id']}/cancel", headers=bearer(worker_token))
    assert error(refused, 403) == "Cancel runs with a project token"
    reopen = await api.put(
        f"/agent-workers/workers/{run['lease_owner']}/runs/{run['run_id']}/session",
        headers=bearer(worker_token),
        json={"session_key": "s1", "status": "active"},
    )
    assert reopen.json()["session"]["status"] == "cancelled"  # ended with its run


async def test_project_runs_are_listed_newest_first_with_cursors(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    headers = await token(api, "alpha")
    ids = []
    for i in range(5):
        reply = await api.post(
            "/runs",
            headers=headers,
            json={
                "kind": "task",
                "owner": {"kind": "project", "id": "alpha"},
                "request": {"target": f"task:{i}"},
            },
        )
        ids.append(reply.json()["run"]["run_id"])
        clock.advance(0.001 if i % 2 else 0)  # two pairs share a created_at
    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.get(f"/projects/alpha/runs{query}", headers=headers)).json()
        seen += [r["run_id"] for r in page["data"]]
        assert all("worker_session" not in r for r in page["data"])
        cursor = page["page_info"]["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    by_id = await api.get(f"/projects/{project_ref('alpha').id}/runs?limit=100", headers=headers)
    assert [r["run_id"] for r in by_id.json()["data"]] == seen
    bad = await api.get("/projects/alpha/runs?cursor=zzz", headers=headers)
    assert error(bad, 400) == "cursor must be a page_info.next value"
    assert error(await api.get("/projects/alpha/runs?limit=0", headers=headers), 400) == (
        "limit must be an integer from 1 to 100"
    )
    assert (await api.get("/projects/beta/runs", headers=ADMIN)).json()["data"] == []


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("after_event_id=-1", "after_event_id must be an integer from 0 to 9223372036854775807"),
        ("after_event_id=x", "after_event_id must be an integer from 0 to 9223372036854775807"),
        ("limit=0", "limit must be an integer from 1 to 1000"),
        ("limit=1001", "limit must be an integer from 1 to 1000"),
    ],
)
async def test_bad_event_queries_are_refused_by_name(
    api: httpx.AsyncClient, query: str, detail: str
) -> None:
    _, _, run, _ = await running(api)
    reply = await api.get(f"/runs/{run['run_id']}/events?{query}", headers=ADMIN)
    assert error(reply, 400) == detail


@pytest.mark.parametrize(
    ("metadata", "detail"),
    [
        ({"inputTokens": -1}, "metadata.inputTokens must be an integer from 0 to 9007199254740991"),
        (
            {"outputTokens": 1.5},
            "metadata.outputTokens must be an integer from 0 to 9007199254740991",
        ),
        ({"model": 7}, "metadata.model must be a string of 1-500 characters"),
    ],
)
async def test_bad_completion_metadata_is_refused_by_field(
    api: httpx.AsyncClient, metadata: dict[str, Any], detail: str
) -> None:
    _, cid, run, worker_token = await running(api)
    reply = await api.post(
        f"/runs/{run['run_id']}/complete",
        headers=bearer(worker_token),
        json={"status": "completed", "metadata": metadata},
    )
    assert error(reply, 400) == detail
    assert (await projection(api, cid, run["run_id"]))["status"] == "running"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"kind": "task", "request": {}}, "request.target is required"),
        ({"kind": "workflow", "request": {"target": "w"}}, "request.workflow_id is required"),
        (
            {"kind": "task", "request": {"target": "t", "runtime_target_kind": "moon"}},
            "request.runtime_target_kind must be one of: main_branch, environment, preview_branch",
        ),
        (
            {"kind": "task", "request": {"target": "t", "runtime_target_branch_id": "b"}},
            "request.runtime_target_branch_id must be a UUID",
        ),
        (
            {"kind": "task", "request": {"target": "t", "timeout_seconds": 0}},
            "request.timeout_seconds must be an integer from 1 to 604800",
        ),
        (
            {"kind": "task", "owner": {"kind": "team", "id": "x"}, "request": {"target": "t"}},
            'owner.kind must be "conversation" or "project"',
        ),
        (
            {"kind": "agent", "owner": {"kind": "conversation", "id": "nope"}},
            "owner.id must be a UUID",
        ),
        (
            {"kind": "task", "parent_run_id": "run_missing", "request": {"target": "t"}},
            "parent_run_id must name a run of this project",
        ),
        (
            {"kind": "task", "trigger": {"kind": "cron"}, "request": {"target": "t"}},
            "trigger.kind must be one of: manual, schedule, webhook, api",
        ),
    ],
)
async def test_bad_canonical_runs_are_refused_by_field(
    api: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    headers = await token(api, "alpha")
    assert error(await api.post("/runs", headers=headers, json=body), 400) == detail
    assert (await api.get("/projects/alpha/runs", headers=headers)).json()["data"] == []


# -- tenants --


async def test_another_projects_token_is_refused_everywhere_and_changes_nothing(
    api: httpx.AsyncClient,
) -> None:
    headers, cid, run, _ = await running(api, "alpha")
    request = (await ask(api, headers, cid, run)).json()
    beta = await token(api, "beta")
    rid, ir = run["run_id"], request["id"]
    calls = [
        ("GET", f"/runs/{rid}", None),
        ("GET", f"/runs/{rid}/events", None),
        ("POST", f"/runs/{rid}/cancel", None),
        ("GET", "/projects/alpha/runs", None),
        ("GET", f"/projects/{project_ref('alpha').id}/runs", None),
        ("POST", "/runs", {"kind": "agent", "owner": {"kind": "conversation", "id": cid}}),
        ("POST", "/conversations", {"project_id": "alpha"}),
        ("GET", f"/conversations/{cid}", None),
        ("PATCH", f"/conversations/{cid}", {"title": "stolen"}),
        ("DELETE", f"/conversations/{cid}", None),
        ("POST", f"/conversations/{cid}/messages", {"role": "user", "parts": []}),
        ("GET", f"/conversations/{cid}/messages", None),
        (
            "POST",
            f"/conversations/{cid}/input-requests",
            {**FORM, "run_id": rid, "tool_call_id": "x"},
        ),
        ("GET", f"/conversations/{cid}/input-requests", None),
        ("GET", f"/conversations/{cid}/input-requests/{ir}", None),
        ("POST", f"/conversations/{cid}/input-requests/{ir}/responses", {"values": {"city": "x"}}),
        ("POST", f"/conversations/{cid}/input-requests/{ir}/cancel", None),
    ]
    for method, path, body in calls:
        reply = await api.request(method, path, headers=beta, json=body)
        assert error(reply, 403) == "Token is not valid for this project", (method, path)
    stream = await api.get(f"/runs/{rid}/events", headers={**beta, "Accept": "text/event-stream"})
    assert error(stream, 403) == "Token is not valid for this project"
    # Nothing changed.
    kept = await api.get(f"/conversations/{cid}", headers=headers)
    assert (kept.json()["title"], kept.json()["message_count"]) == ("t", 1)
    assert (await projection(api, cid, rid))["status"] == "waiting_for_tool"
    listed = await api.get(f"/conversations/{cid}/input-requests", headers=headers)
    assert [r["status"] for r in listed.json()["data"]] == ["open"]
    assert len((await api.get("/projects/alpha/runs", headers=headers)).json()["data"]) == 1
    assert (await api.get("/projects/beta/runs", headers=beta)).json()["data"] == []


async def test_an_unlinked_conversation_is_only_for_callers_of_every_project(
    api: httpx.AsyncClient,
) -> None:
    unlinked = (await api.post("/conversations", headers=ADMIN, json={})).json()["id"]
    alpha = await token(api, "alpha")
    reply = await api.get(f"/conversations/{unlinked}", headers=alpha)
    assert error(reply, 403) == "Token is not valid for this project"
    reply = await api.patch(
        f"/conversations/{unlinked}", headers=alpha, json={"project_id": "alpha"}
    )
    assert error(reply, 403) == "Token is not valid for this project"


async def test_worker_tokens_cannot_act_as_people(api: httpx.AsyncClient) -> None:
    headers, cid, run, worker_token = await running(api)
    request = (await ask(api, headers, cid, run)).json()
    worker = bearer(worker_token)
    path = f"/conversations/{cid}/input-requests/{request['id']}"
    refusals = [
        ("POST", "/conversations", {}, "Create conversations with a project token"),
        ("PATCH", f"/conversations/{cid}", {}, "Change conversations with a project token"),
        ("DELETE", f"/conversations/{cid}", None, "Delete conversations with a project token"),
        ("POST", f"{path}/responses", {"values": {}}, "Answer input requests with a project token"),
        ("POST", f"{path}/cancel", None, "Cancel input requests with a project token"),
    ]
    for method, url, body, detail in refusals:
        reply = await api.request(method, url, headers=worker, json=body)
        assert error(reply, 403) == detail
    assert (await api.get(path, headers=headers)).json()["status"] == "open"


async def test_deleting_a_conversation_cancels_its_runs(api: httpx.AsyncClient) -> None:
    headers, cid, run, _ = await running(api)
    queued = await conversation_run(api, headers, cid)
    reply = await api.delete(f"/conversations/{cid}", headers=headers)
    assert reply.status_code == 200
    assert sorted(reply.json()["cancelled_run_ids"]) == sorted([run["run_id"], queued["run_id"]])
    assert error(await api.get(f"/conversations/{cid}", headers=headers), 404) == (
        "Conversation not found"
    )
    assert error(await api.delete(f"/conversations/{cid}", headers=headers), 404) == (
        "Conversation not found"
    )
    again = await api.post(
        "/runs",
        headers=headers,
        json={"kind": "agent", "owner": {"kind": "conversation", "id": cid}},
    )
    assert error(again, 404) == "Conversation not found"


# -- the OpenAPI document --

USER_ROUTES = {
    ("post", "/runs"): ("CreateRunResponse", True),
    ("get", "/runs/{run_id}"): ("Run", False),
    ("get", "/runs/{run_id}/events"): ("RunEventList", False),
    ("post", "/runs/{run_id}/cancel"): ("CancelRunResponse", False),
    ("get", "/projects/{project_reference}/runs"): ("RunList", False),
    ("post", "/conversations"): ("Conversation", True),
    ("get", "/conversations/{conversation_id}"): ("Conversation", False),
    ("patch", "/conversations/{conversation_id}"): ("Conversation", True),
    ("delete", "/conversations/{conversation_id}"): ("DeletedConversation", False),
    ("post", "/conversations/{conversation_id}/messages"): ("Message", True),
    ("get", "/conversations/{conversation_id}/messages"): ("MessageList", False),
    ("post", "/conversations/{conversation_id}/input-requests"): ("InputRequest", True),
    ("get", "/conversations/{conversation_id}/input-requests"): ("InputRequestList", False),
    ("get", "/conversations/{conversation_id}/input-requests/{request_id}"): (
        "InputRequest",
        False,
    ),
    ("post", "/conversations/{conversation_id}/input-requests/{request_id}/responses"): (
        "InputRequest",
        True,
    ),
    ("post", "/conversations/{conversation_id}/input-requests/{request_id}/cancel"): (
        "InputRequest",
        False,
    ),
}


def test_user_routes_declare_their_bodies_and_replies_in_openapi() -> None:
    document = create_app(Settings(database_url="sqlite:///unused.db")).openapi()
    for (method, path), (reply_model, has_body) in USER_ROUTES.items():
        operation = document["paths"][path][method]
        success = next(v for k, v in operation["responses"].items() if k.startswith("2"))
        schema = success["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{reply_model}"}, (method, path)
        for code in ("400", "401", "403", "404", "413"):
            error = operation["responses"][code]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/VeryfrontError"}, (method, path, code)
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        assert (body is not None) == has_body, (method, path)
    run = document["components"]["schemas"]["Run"]
    assert {"kind", "owner", "root_run_id", "waiting_reason", "artifacts"} <= set(run["required"])


async def test_nan_and_infinity_are_refused_not_stored(api: httpx.AsyncClient) -> None:
    """Python's JSON reader takes NaN, Infinity and 1e400; no JSON column or reply can hold
    them, so they are refused, naming the field, before anything is written."""
    headers, cid, run, worker_token = await running(api)
    raw = {"content-type": "application/json"}
    bodies = [
        ("/runs", b'{"kind":"task","request":{"target":"t","config":{"x":NaN}}}', headers),
        ("/conversations", b'{"metadata":{"a":-Infinity}}', headers),
        (
            f"/conversations/{cid}/messages",
            b'{"role":"user","parts":[{"type":"data","name":"n","value":1e400}]}',
            headers,
        ),
        (
            f"/conversations/{cid}/runs/{run['run_id']}/events",
            b'{"events":[{"type":"CUSTOM","value":NaN}]}',
            bearer(worker_token),
        ),
        (f"/runs/{run['run_id']}/complete", b'{"status":"completed","output":NaN}', headers),
    ]
    fields = ["request.config.x", "metadata.a", "parts[0].value", "events[0].value", "output"]
    for (path, body, auth), field in zip(bodies, fields, strict=True):
        reply = await api.post(path, headers={**auth, **raw}, content=body)
        assert error(reply, 400) == f"{field} must be a finite number", path
    stored = await projection(api, cid, run["run_id"])
    assert (stored["status"], stored["latest_event_id"]) == ("running", 0)
    assert len((await api.get("/projects/alpha/runs", headers=headers)).json()["data"]) == 1
    assert (await api.get(f"/conversations/{cid}", headers=headers)).json()["message_count"] == 1
    long = "9" * 5000  # int() of more than 4,300 digits raises
    reply = await api.get(f"/runs/{run['run_id']}/events?after_event_id={long}", headers=headers)
    assert error(reply, 400).startswith("after_event_id must be an integer from 0 to")


async def test_an_operator_stop_ends_the_run_and_its_open_request(api: httpx.AsyncClient) -> None:
    headers, cid, run, _ = await running(api)
    request = (await ask(api, headers, cid, run)).json()
    stopped = await api.post(f"/api/v1/sessions/{run['session_id']}/stop", headers=ADMIN, json={})
    assert stopped.status_code == 200
    canonical = (await api.get(f"/runs/{run['run_id']}", headers=headers)).json()
    assert (canonical["status"], canonical["waiting_reason"]) == ("cancelled", None)
    assert canonical["completed_at"] == "2026-01-01T00:00:00.000Z"
    path = f"/conversations/{cid}/input-requests/{request['id']}"
    assert (await api.get(path, headers=headers)).json()["status"] == "cancelled"
    events = (await api.get(f"/runs/{run['run_id']}/events", headers=headers)).json()["data"]
    assert [e["event_type"] for e in events] == ["CUSTOM"]  # nothing fed to an ended run
