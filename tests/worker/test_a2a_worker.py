"""Agents talk back, end to end with a real `shopfloor worker` running the fake Claude Code.
A2A: the a2a-sdk client fetches the agent card of a real server and sends a message, which
becomes a session the worker completes; the client follows the task to `completed`, and
cancels another. MCP: the worker hands its agent the session's MCP endpoint and token."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, Task, TaskIdParams, TaskQueryParams, TaskState, TextPart

from shopfloor.client import OperatorClient
from tests.conftest import ADMIN_KEY
from tests.processes.server import ServerProcess
from tests.worker.conftest import Workers, agent_runs, create, wait_ended, wait_for

pytestmark = pytest.mark.slow


def message(text: str, **metadata: str) -> Message:
    return Message(
        role=Role.user,
        parts=[Part(root=TextPart(text=text))],
        message_id=uuid.uuid4().hex,
        metadata=metadata or None,
    )


async def test_a2a_message_becomes_a_session_a_worker_completes(
    server: ServerProcess, workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start(agent="claude")
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(headers=auth, timeout=30) as http:
        card = await A2ACardResolver(http, server.url).get_agent_card()
        assert card.url == server.url + "/api/a2a"
        assert "development" in [s.id for s in card.skills]
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)
        events = [e async for e in client.send_message(message("Fix the login form"))]
        assert len(events) == 1 and isinstance(events[0], tuple)
        task = events[0][0]
        assert isinstance(task, Task) and task.status.state == TaskState.submitted

        async def state() -> TaskState:
            return (await client.get_task(TaskQueryParams(id=task.id))).status.state

        done = None
        for _ in range(600):
            done = await state()
            if done == TaskState.completed:
                break
            await asyncio.sleep(0.1)
        assert done == TaskState.completed, worker.log()
        runs = agent_runs(worker.agent_log, task.id)
        assert runs and runs[0]["prompts"] == ["Fix the login form"]
        assert operator.get_session(task.id)["status"] == "completed"

        worker.stop()
        other = [e async for e in client.send_message(message("Never mind", workType="qa"))]
        queued = other[0][0]
        assert isinstance(queued, Task)
        canceled = await client.cancel_task(TaskIdParams(id=queued.id))
        assert canceled.status.state == TaskState.canceled
        wait_for(lambda: operator.get_session(queued.id)["status"] == "stopped")
        await client.close()


async def test_a2a_streaming_follows_the_task_to_completion(
    server: ServerProcess, workers: Workers
) -> None:
    """The a2a-sdk client in its default streaming mode (message/stream): the task, then its
    status updates as the worker claims and completes it, the last one final."""
    worker = workers.start(agent="claude")
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(headers=auth, timeout=60) as http:
        card = await A2ACardResolver(http, server.url).get_agent_card()
        assert card.capabilities.streaming is True
        client = ClientFactory(ClientConfig(httpx_client=http)).create(card)
        states = []
        async for event in client.send_message(message("Tidy the notes")):
            assert isinstance(event, tuple)
            task, update = event
            states.append(task.status.state)
            if update is not None and update.final:
                break
        await client.close()
    assert states[0] == TaskState.submitted, worker.log()
    assert states[-1] == TaskState.completed, worker.log()
    assert TaskState.working in states


def test_the_worker_hands_its_agent_the_sessions_mcp_endpoint(
    server: ServerProcess, workers: Workers, operator: OperatorClient
) -> None:
    """The agent gets $SHOPFLOOR_MCP_URL and $SHOPFLOOR_MCP_TOKEN (never the worker's key)
    and remembers something; a later session of the project recalls it."""
    worker = workers.start(agent="claude")
    first = create(operator, "remember:deploys-go-through-ops.sh", projectName="web")
    assert wait_ended(operator, first)["status"] == "completed", worker.log()
    run = next(r for r in agent_runs(worker.agent_log, first) if "mcp" in r)
    stored = json.loads(run["mcp"]["result"]["content"][0]["text"])
    assert stored["stored"] is True and stored["content"] == "deploys-go-through-ops.sh"
    assert run["leaked"] == []
    second = create(operator, "sleep:30", projectName="web")
    wait_for(lambda: operator.get_session(second)["status"] == "running")
    recall = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "af_memory_recall", "arguments": {"query": "deploys"}},
    }
    reply = httpx.post(
        f"{server.url}/api/mcp/{second}",
        json=recall,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )
    found = json.loads(reply.json()["result"]["content"][0]["text"])
    assert [r["sessionId"] for r in found["results"]] == [first]
    operator.stop_session(second)
