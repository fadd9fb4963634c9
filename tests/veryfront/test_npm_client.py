"""Interop: the real `veryfront` npm client (createExternalAgentWorkerClient and the durable-run
helpers of veryfront@0.1.1031, installed from npm by scripts/test.sh into interop/veryfront)
drives a real `shopfloor serve` process. The node script fails if any reply does not satisfy
the package's zod schemas; here we check what it saw and what the server kept.

Node and the installed package are required: a missing one fails these tests (set
SHOPFLOOR_SKIP_NODE_INTEROP=1 to skip them deliberately on a machine without Node)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shopfloor.service.runs import project_ref
from tests.conftest import BACKENDS
from tests.veryfront.npm import ADMIN, node_binary, run_script, serve_backend
from tests.veryfront.npm import project_token as mint_token
from tests.veryfront.server import Server

PROJECT = "demo"
_node = node_binary


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server process per backend for this module (each test uses its own kind/key)."""
    yield from serve_backend(request.param, tmp_path_factory, SHOPFLOOR_REAP_INTERVAL_SECONDS="0.2")


def project_token(server: Server) -> str:
    return mint_token(server, PROJECT)


def admit(server: Server, kind: str, worker_key: str, text: str) -> dict[str, Any]:
    reply = httpx.post(
        f"{server.url}/runs",
        headers={**ADMIN, "Idempotency-Key": f"interop-{uuid.uuid4()}"},
        json={
            "project_id": PROJECT,
            "title": "interop",
            "target": {"type": "agent", "id": "interop-agent"},
            "input": text,
            "config": {
                "agent_admission": {
                    "mode": "worker",
                    "implementation_kind": kind,
                    "worker_key": worker_key,
                }
            },
        },
    )
    assert reply.status_code == 202, reply.text
    run: dict[str, Any] = reply.json()["run"]
    return run


def run_node(
    node: str, scenario: str, server: Server, token: str, kind: str, worker_key: str
) -> dict[str, Any]:
    env = {
        "VF_TOKEN": token,
        "VF_PROJECT": PROJECT,
        "VF_IMPL": kind,
        "VF_WORKER_KEY": worker_key,
    }
    return run_script(node, "worker-flow.mjs", scenario, server, env)


def get(server: Server, path: str) -> Any:
    reply = httpx.get(f"{server.url}{path}", headers=ADMIN)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_worker_lifecycle_with_the_npm_client(server: Server) -> None:
    node = _node()
    kind, key = "interop-flow", f"worker-{uuid.uuid4().hex[:8]}"
    admitted = admit(server, kind, key, "Say hello")
    out = run_node(node, "flow", server, project_token(server), kind, key)

    worker = out["worker"]
    assert uuid.UUID(worker["id"]).version == 4
    assert worker["project_id"] == project_ref(PROJECT).id
    assert (worker["implementation_kind"], worker["worker_key"]) == (kind, key)
    assert out["heartbeat"]["last_heartbeat_at"] >= worker["last_heartbeat_at"]

    claimed = out["claimed"]
    assert claimed["run_id"] == admitted["run_id"]
    assert claimed["status"] == "running"
    assert claimed["lease_owner"] == worker["id"]
    assert claimed["agent_id"] == "interop-agent"
    message = claimed["request_snapshot"]["messages"][0]
    assert (message["role"], message["parts"][0]["text"]) == ("user", "Say hello")
    assert out["renewed"]["lease_expires_at"] > claimed["lease_expires_at"]
    assert out["session"]["worker_id"] == worker["id"]

    assert (out["append"]["appendedCount"], out["append"]["latestExternalEventSequence"]) == (3, 3)
    assert out["durableAppend"]["latestExternalEventSequence"] == 4
    assert out["staleCursor"] == {
        "status": 400,
        "detail": "External run event cursor mismatch",
        "isCursorMismatch": True,
    }
    assert out["projection"]["status"] == "running"
    assert out["projection"]["latestExternalEventSequence"] == 4
    assert out["sessionEnded"]["status"] == "completed"
    assert out["sessionEnded"]["ended_at"] is not None
    assert out["sessionEnded"]["id"] == out["session"]["id"]
    assert out["complete"]["run"]["status"] == "completed"
    assert out["completeAgain"]["run"]["status"] == "completed"
    assert out["afterComplete"] == {
        "status": 400,
        "detail": "Cannot append external events to a terminal run",
        "isIgnorable": True,
    }
    assert out["nothingLeft"] is None

    run = get(server, f"/runs/{admitted['run_id']}")
    assert run["status"] == "completed"
    assert run["worker_session"]["session_key"] == out["session"]["session_key"]
    events = get(server, f"/runs/{admitted['run_id']}/events")["data"]
    assert [e["event_type"] for e in events] == [
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "CUSTOM",
    ]
    assert events[1]["payload"]["delta"] == "Hello from the interop worker."


def test_lease_loss_with_the_npm_client(server: Server) -> None:
    node = _node()
    kind, key = "interop-lease", f"worker-{uuid.uuid4().hex[:8]}"
    admitted = admit(server, kind, key, "Take too long")
    out = run_node(node, "lease-loss", server, project_token(server), kind, key)

    assert out["claimed"]["run_id"] == admitted["run_id"]
    assert out["renewed"] is None  # the client's signal to stop working on the run
    for refused in ("appendRefused", "completeRefused", "sessionRefused"):
        assert json.loads(out[refused])["detail"] == "Run lease is not held; claim the run again"
    assert out["reclaimed"]["run_id"] == admitted["run_id"]
    assert out["reclaimed"]["lease_expires_at"] > out["claimed"]["lease_expires_at"]
    assert out["complete"]["run"]["status"] == "failed"

    run = get(server, f"/runs/{admitted['run_id']}")
    assert (run["terminal_error_code"], run["terminal_error_message"]) == (
        "INTEROP_FAILED",
        "failed on purpose",
    )
    # The refused append wrote nothing: only the second attempt's events are there.
    events = get(server, f"/runs/{admitted['run_id']}/events")["data"]
    assert [e["payload"].get("delta") for e in events] == [None, "second attempt", None]
    history = get(server, f"/api/v1/sessions/{run['session_id']}")["history"]
    assert [h["reason"] for h in history if h["status"] == "pending"] == [
        "run admitted",
        "lease expired",
    ]


def test_create_conversation_agent_run_from_the_npm_package(server: Server) -> None:
    node = _node()
    kind = "interop-created"
    out = run_node(node, "create-run", server, project_token(server), kind, "any-worker")
    assert out["created"]["status"] == "pending"
    assert out["claimed"]["run_id"] == out["created"]["runId"]
    assert out["claimed"]["conversation_id"] == out["created"]["conversationId"]
    assert out["complete"]["run"]["status"] == "cancelled"
    assert out["projection"]["status"] == "cancelled"
