"""Interop, the user's side: the real `veryfront` npm client (`veryfront/runs`, the
conversation, durable-run and input-request helpers of `veryfront/agent`, the live-eval API
client) drives a real `shopfloor serve` process, with a real worker client working the runs.
Every reply is parsed by the package's own zod schemas in node (interop/veryfront/
user-flow.mjs); here we check what the client saw and what the server kept."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shopfloor.service.runs import project_ref
from tests.conftest import BACKENDS
from tests.veryfront.npm import ADMIN, node_binary, project_token, run_script, serve_backend
from tests.veryfront.server import Server


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from serve_backend(request.param, tmp_path_factory)


def run_user_flow(server: Server, scenario: str) -> tuple[dict[str, Any], str]:
    """Run a scenario in a project of its own; (its result, the project slug)."""
    node = node_binary()
    project = f"user-{uuid.uuid4().hex[:8]}"
    env = {
        "VF_TOKEN": project_token(server, project),
        "VF_PROJECT": project,
        "VF_PROJECT_ID": project_ref(project).id,
        "VF_IMPL": "interop-agent",
    }
    return run_script(node, "user-flow.mjs", scenario, server, env), project


def get(server: Server, path: str) -> Any:
    reply = httpx.get(f"{server.url}{path}", headers=ADMIN)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_runs_client_creates_reads_pages_lists_and_cancels(server: Server) -> None:
    out, project = run_user_flow(server, "runs")
    project_id = project_ref(project).id
    created = out["created"]
    run_id = created["run"]["run_id"]
    assert (created["accepted"], created["duplicate"]) == (True, False)
    assert run_id.startswith("task_")
    assert (out["duplicate"]["duplicate"], out["duplicate"]["run"]["run_id"]) == (True, run_id)
    run = created["run"]
    assert (run["kind"], run["status"], run["owner"]) == (
        "task",
        "pending",
        {"kind": "project", "id": project_id},
    )
    assert (run["target"], run["batch_id"], run["config"]) == (
        "task:sync-data",
        "batch-1",
        {"batchSize": 100},
    )
    assert (run["timeout_seconds"], run["backoff_limit"], run["runtime_target_kind"]) == (
        600,
        2,
        "main_branch",
    )
    assert (run["parent_run_id"], run["root_run_id"], run["trigger_kind"]) == (None, run_id, "api")
    assert (run["started_at"], run["completed_at"], run["artifacts"]) == (None, None, [])
    child = out["child"]["run"]
    assert (child["parent_run_id"], child["root_run_id"]) == (run_id, run_id)
    workflow = out["workflow"]["run"]
    assert (workflow["kind"], workflow["workflow_id"], workflow["input"]) == (
        "workflow",
        "wf-1",
        {"day": "monday"},
    )
    assert workflow["start_mode"] == "immediate"
    assert (out["eval"]["run"]["kind"], out["eval"]["run"]["target"]) == ("eval", "eval:smoke")
    ingest = out["ingest"]["run"]
    assert (ingest["target"], list(ingest["config"])) == ("task:knowledge-ingest", ["upload_ids"])

    # A worker of implementation kind "task" claims it, with what to run in the snapshot.
    claimed = out["claimed"]
    forwarded = claimed["request_snapshot"]["forwardedProps"]["run"]
    assert (forwarded["kind"], forwarded["target"], forwarded["name"]) == (
        "task",
        "task:sync-data",
        "Sync data",
    )
    assert (out["running"]["status"], out["running"]["started_at"] is not None) == ("running", True)

    # Events: five, two per page, after_event_id exclusive.
    pages = out["pages"]
    assert [[e["event_id"] for e in p["data"]] for p in pages] == [[1, 2], [3, 4], [5]]
    assert [p["page_info"] for p in pages] == [
        {"self": None, "first": None, "next": "2", "prev": None},
        {"self": "2", "first": None, "next": "4", "prev": "0"},
        {"self": "4", "first": None, "next": None, "prev": "2"},
    ]
    assert [e["event_type"] for e in out["all"]["data"]] == [
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "TEXT_MESSAGE_START",
        "CUSTOM",
    ]
    assert out["all"]["data"][1]["payload"]["delta"] == "one"
    assert out["afterSix"]["data"] == []

    # The project's five runs, newest first, two per page; by UUID too.
    listed = [r["run_id"] for p in out["listPages"] for r in p["data"]]
    newest_first = [ingest, out["eval"]["run"], workflow, child, run]
    assert listed == [r["run_id"] for r in newest_first]
    assert [len(p["data"]) for p in out["listPages"]] == [2, 2, 1]
    assert out["listPages"][-1]["page_info"]["next"] is None
    assert [r["run_id"] for r in out["listByProjectId"]["data"]] == listed

    # Cancel: a running run, then again (already ended), then a queued one.
    assert (out["cancel"]["cancelled"], out["cancel"]["run"]["status"]) == (True, "cancelled")
    assert out["cancel"]["run"]["completed_at"] is not None
    assert (out["cancelAgain"]["cancelled"], out["cancelAgain"]["run"]["status"]) == (
        False,
        "cancelled",
    )
    assert (out["cancelPending"]["cancelled"], out["cancelPending"]["run"]["status"]) == (
        True,
        "cancelled",
    )
    # The worker learns it from its lease renewal and its refused append.
    assert out["renewAfterCancel"] is None
    assert out["lateAppend"] == {
        "status": 400,
        "detail": "Cannot append external events to a terminal run",
        "isIgnorable": True,
    }
    assert out["missing"]["status"] == 404

    stored = get(server, f"/runs/{run_id}")
    assert (stored["status"], stored["duration_ms"] is not None) == ("cancelled", True)
    session = get(server, f"/api/v1/sessions/{stored['session_id']}")
    assert session["status"] == "stopped"
    assert [h["reason"] for h in session["history"]][-1] == "cancelled by user"


def test_conversation_run_waits_for_input_and_completes(server: Server) -> None:
    out, project = run_user_flow(server, "conversation")
    conversation = out["conversation"]
    assert conversation["projectId"] == project_ref(project).id  # the token's project
    assert out["fetched"] == conversation
    assert out["messageAgain"]["id"] == out["message"]["id"]  # same idempotency key

    created = out["created"]
    assert (created["status"], created["conversationId"]) == ("pending", conversation["id"])
    assert created["messageId"] == out["message"]["id"]
    run_id = created["runId"]

    # The worker claims it with the conversation's messages as its request snapshot.
    claimed = out["claimed"]
    (message,) = claimed["request_snapshot"]["messages"]
    assert (message["id"], message["role"]) == (out["message"]["id"], "user")
    assert message["parts"] == [{"type": "text", "text": "What is the weather in Oslo?"}]
    assert claimed["message_id"] == out["message"]["id"]

    # Asking for input puts the run into waiting_for_tool; appends are refused meanwhile.
    request = out["inputRequest"]
    assert (request["status"], request["runId"], request["toolCallId"]) == (
        "open",
        run_id,
        "call-units",
    )
    assert request["metadata"] == {"submitLabel": "Go"}
    assert request["fields"][0]["options"][1] == {"value": "f", "label": "Fahrenheit"}
    waiting = out["waiting"]
    assert (waiting["status"], waiting["waitingToolCallId"], waiting["waitingToolName"]) == (
        "waiting_for_tool",
        "call-units",
        "form_input",
    )
    assert (out["waitingRun"]["status"], out["waitingRun"]["waiting_reason"]) == ("waiting", "tool")
    assert out["appendWhileWaiting"] == {
        "status": 400,
        "detail": "Cannot append external events while the run is waiting for a tool result",
        "isIgnorable": True,
    }

    # The answer ends the wait.
    answered = out["answered"]
    assert answered["status"] == "submitted" and answered["submittedAt"] is not None
    assert answered["latestResponse"]["values"] == {"units": "c", "wind": True}
    assert answered["latestResponse"]["inputRequestId"] == request["id"]
    resumed = out["resumed"]
    assert (resumed["status"], resumed["waitingToolCallId"]) == ("running", None)
    assert out["afterAnswer"]["appendedCount"] == 3

    # Completed with metadata; the monitor saw it running, then reported the end.
    assert out["monitoredWhileRunning"] == []
    terminal = {"status": "completed", "name": "ConversationRunTerminalStateError"}
    assert out["monitored"] == [terminal]
    completed = out["completed"]
    assert completed["status"] == "completed"
    assert completed["metadata"] == {
        "provider": "anthropic",
        "model": "claude-test",
        "inputTokens": 120,
        "outputTokens": 45,
        "finishReason": "stop",
    }
    assert completed["owner"] == {"kind": "conversation", "id": conversation["id"]}
    assert out["projection"]["status"] == "completed"

    types = [e["event_type"] for e in out["events"]["data"]]
    assert types.count("TOOL_CALL_RESULT") == 1
    assert "CUSTOM" in types  # the input request's lifecycle event
    result = next(e for e in out["events"]["data"] if e["event_type"] == "TOOL_CALL_RESULT")
    assert result["payload"]["toolCallId"] == "call-units"
    assert json.loads(result["payload"]["content"]) == {
        "submitted": True,
        "values": {"units": "c", "wind": True},
        "inputRequestId": request["id"],
    }
    listed = out["messages"]["data"]
    assert [(m["id"], m["role"], m["seq"]) for m in listed] == [(out["message"]["id"], "user", 1)]

    # The operator views show how it ended; the worker session ended with the run.
    stored = get(server, f"/runs/{run_id}")
    assert stored["worker_session"]["status"] == "completed"
    assert stored["worker_session"]["ended_at"] is not None
    session = get(server, f"/api/v1/sessions/{stored['session_id']}")
    assert (session["inputTokens"], session["outputTokens"]) == (120, 45)
    assert session["metadata"] == {
        "provider": "anthropic",
        "model": "claude-test",
        "finishReason": "stop",
    }


def test_cancelled_input_request_and_deleted_conversation(server: Server) -> None:
    out, _ = run_user_flow(server, "cancel-input")
    assert out["cancelled"]["status"] == "cancelled"
    assert out["cancelled"]["cancelledAt"] is not None
    assert (out["afterCancel"]["status"], out["afterCancel"]["waitingToolCallId"]) == (
        "running",
        None,
    )
    assert out["openAfterCancel"] == []
    assert out["runAfterDelete"]["status"] == "cancelled"
    assert "Fetch conversation failed (404)" in out["fetchAfterDelete"]
    assert out["renewAfterDelete"] is None
