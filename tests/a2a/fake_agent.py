"""A remote A2A agent for the tests: a real HTTP server (uvicorn in a thread, on loopback)
serving an agent card and answering `message/send` with a completed task whose artifact
echoes the message; skill `fail` answers a JSON-RPC error. Also serves what a registry must
refuse: a redirect to another host, a card too large, JSON that is no card."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route


def _card(base: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": "Deploys things",
        "url": base + "/rpc",
        "version": "1.0.0",
        "capabilities": {},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {"id": "deploy", "name": "Deploy", "description": "Deploy a service", "tags": []},
            {"id": "fail", "name": "Fail", "description": "Always fails", "tags": []},
        ],
    }


def app(base: str, received: list[dict[str, Any]], name: str) -> Starlette:
    async def card(_: Request) -> JSONResponse:
        return JSONResponse(_card(base, name))

    async def rpc(request: Request) -> JSONResponse:
        body = await request.json()
        received.append(body)
        message = body["params"]["message"]
        text = message["parts"][0]["text"]
        if message.get("metadata", {}).get("skill") == "fail":
            error = {"code": -32603, "message": "deploy target on fire"}
            return JSONResponse({"jsonrpc": "2.0", "id": body["id"], "error": error})
        task = {
            "kind": "task",
            "id": "remote-task-1",
            "contextId": "ctx",
            "status": {"state": "completed"},
            "artifacts": [
                {"artifactId": "a", "parts": [{"kind": "text", "text": f"done: {text}"}]}
            ],
        }
        return JSONResponse({"jsonrpc": "2.0", "id": body["id"], "result": task})

    async def elsewhere(_: Request) -> Response:
        other = base.replace("127.0.0.1", "localhost")
        return RedirectResponse(other + "/.well-known/agent-card.json", status_code=302)

    async def big(_: Request) -> Response:
        return Response(b'{"name": "' + b"x" * 300_000 + b'"}', media_type="application/json")

    async def not_a_card(_: Request) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    return Starlette(
        routes=[
            Route("/.well-known/agent-card.json", card),
            Route("/rpc", rpc, methods=["POST"]),
            Route("/elsewhere", elsewhere),
            Route("/big.json", big),
            Route("/nocard.json", not_a_card),
        ]
    )


class FakeAgent:
    def __init__(self, url: str, received: list[dict[str, Any]]) -> None:
        self.url = url
        self.received = received


@contextmanager
def fake_agent(name: str = "Vercel Ops") -> Iterator[FakeAgent]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    received: list[dict[str, Any]] = []
    config = uvicorn.Config(
        app(base, received, name), host="127.0.0.1", port=port, log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield FakeAgent(base, received)
    finally:
        server.should_exit = True
        thread.join(10)
