"""The official `mcp` SDK's client (streamable HTTP transport) against a real `shopfloor serve`
process on each database: initialize, list the tools, remember in one session and recall in
another of the same project; a worker of another organisation is refused."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from tests.a2a.fake_agent import fake_agent
from tests.conftest import ADMIN_KEY, BACKENDS, PG_URL, Backend, _drop_schema, _require_postgres
from tests.processes.server import ServerProcess, server_env, start_server, stop_cleanly

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass(frozen=True)
class Worker:
    worker_id: str
    auth: dict[str, str]


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("mcp")
    if request.param == "sqlite":
        backend = Backend("sqlite", f"sqlite:///{tmp / 'shopfloor.db'}", None)
    else:
        _require_postgres()
        backend = Backend("postgres", PG_URL, f"t_{uuid.uuid4().hex[:12]}")
    proc = start_server(server_env(backend, tmp / "data", SHOPFLOOR_POLL_HOLD_MS="0"), tmp / "log")
    yield proc
    stop_cleanly(proc)
    if backend.schema:
        _drop_schema(backend.schema)


def worker_of(api: httpx.Client, slug: str) -> Worker:
    assert api.post("/api/v1/orgs", json={"slug": slug}, headers=ADMIN).status_code == 201
    token = api.post("/api/v1/registration-tokens", json={"org": slug}, headers=ADMIN).json()
    registered = api.post(
        "/api/workers/register",
        json={"hostname": slug, "capacity": 5},
        headers={"Authorization": f"Bearer {token['token']}"},
    ).json()
    return Worker(registered["workerId"], {"Authorization": f"Bearer {registered['runtimeToken']}"})


def held_session(api: httpx.Client, worker: Worker, org: str) -> str:
    body = {"prompt": "work", "projectName": "web", "orgId": org}
    session_id: str = api.post("/api/v1/sessions", json=body, headers=ADMIN).json()["sessionId"]
    polled = api.get(f"/api/workers/{worker.worker_id}/poll", headers=worker.auth).json()
    assert session_id in polled["claimedSessionIds"], polled
    return session_id


async def use_tools(url: str, auth: dict[str, str], *calls: tuple[str, dict[str, Any]]) -> Any:
    """Connect as an agent would, initialize, and make the calls; the tool list and the
    results' JSON payloads."""
    async with (
        httpx.AsyncClient(headers=auth, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        init = await session.initialize()
        assert init.serverInfo.name == "rensei-platform"
        tools = await session.list_tools()
        results = []
        for name, arguments in calls:
            result = await session.call_tool(name, arguments)
            assert not result.isError, result
            text = result.content[0].text  # type: ignore[union-attr]
            results.append(json.loads(text) if text.startswith("{") else text)
        return [t.name for t in tools.tools], results


async def test_an_agent_remembers_across_sessions_of_its_project(server: ServerProcess) -> None:
    slug = f"o{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as api:
        worker = worker_of(api, slug)
        first, second = held_session(api, worker, slug), held_session(api, worker, slug)
    remember = ("af_memory_remember", {"content": "Run migrations with alembic upgrade head"})
    names, [stored] = await use_tools(f"{server.url}/api/mcp/{first}", worker.auth, remember)
    assert {"af_memory_remember", "af_memory_recall", "af_memory_forget"} <= set(names)
    assert stored["stored"] is True
    recall = ("af_memory_recall", {"query": "how do I run the migrations?"})
    _, [found] = await use_tools(f"{server.url}/api/mcp/{second}", worker.auth, recall)
    assert [r["id"] for r in found["results"]] == [stored["id"]]


async def test_a_registered_a2a_agent_is_a_peer_tool(server: ServerProcess) -> None:
    slug = f"o{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as api:
        worker = worker_of(api, slug)
        session = held_session(api, worker, slug)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
        minted = await api.post(f"/api/org/{slug}/keys", json={"name": "k"}, headers=ADMIN)
        key = {"Authorization": f"Bearer {minted.json()['key']['fullKey']}"}
        with fake_agent("Vercel Ops") as peer:
            registered = await api.post("/api/a2a/agents", json={"url": peer.url}, headers=key)
            assert registered.status_code == 200, registered.text
            deploy = ("vercel_ops.deploy", {"text": "the docs site"})
            url = f"{server.url}/api/mcp/{session}"
            names, [answer] = await use_tools(url, worker.auth, deploy)
        assert "vercel_ops.deploy" in names and "a2a_vercel_ops_deploy" in names
        assert answer == "done: the docs site"
        dispatches = (await api.get("/api/a2a/dispatches", headers=key)).json()["dispatches"]
        assert [(d["status"], d["dispatchType"]) for d in dispatches] == [
            ("completed", "transparent")
        ]


async def test_another_organisations_worker_is_refused(server: ServerProcess) -> None:
    ours, theirs = f"o{uuid.uuid4().hex[:8]}", f"o{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as api:
        our_worker, their_worker = worker_of(api, ours), worker_of(api, theirs)
        session = held_session(api, our_worker, ours)
    with pytest.raises(BaseExceptionGroup) as refused:
        await use_tools(f"{server.url}/api/mcp/{session}", their_worker.auth)
    error = leaf(refused.value)
    assert isinstance(error, httpx.HTTPStatusError) and error.response.status_code == 403


async def test_bad_arguments_are_json_rpc_errors(server: ServerProcess) -> None:
    slug = f"o{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as api:
        worker = worker_of(api, slug)
        session = held_session(api, worker, slug)
    with pytest.raises(BaseExceptionGroup) as refused:
        await use_tools(
            f"{server.url}/api/mcp/{session}",
            worker.auth,
            ("af_memory_remember", {"content": "x" * 20_000}),
        )
    error = leaf(refused.value)
    assert isinstance(error, McpError)
    assert error.error.code == -32602 and "content" in error.error.message


def leaf(error: BaseException) -> BaseException:
    """The error inside the SDK's task groups."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
