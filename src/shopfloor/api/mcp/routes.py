"""The per-session MCP endpoint (rensei-platform.md §7.1): `POST /api/mcp/{sessionId}`,
MCP's Streamable HTTP transport answering in JSON (no server-initiated stream: GET and DELETE
are 405), JSON-RPC 2.0 single or batch. Stateless: no Mcp-Session-Id, the session is the
URL's. HTTP errors (401, 403, 404, 413) are `{"error", "message"}`; JSON-RPC errors are in
the JSON-RPC envelope.

Left out of the OpenAPI document: one POST carries every MCP method, and a body of
notifications is answered 202 with no body, which the document (one JSON schema per reply)
cannot describe; the MCP specification is the contract, and the official SDK's client tests it
(tests/mcp)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from mcp import types

from shopfloor.api import jsonrpc
from shopfloor.api.jsonrpc import Call, RpcError
from shopfloor.api.mcp import peer_tools
from shopfloor.api.mcp.auth import session_for_caller
from shopfloor.api.mcp.tools import TOOLS, ToolEnv, call_tool
from shopfloor.api.state import services
from shopfloor.service.fleet_ops import FleetOps, FleetScope
from shopfloor.service.memory import MemoryContext

router = APIRouter()

PROTOCOL_VERSION = "2024-11-05"
# Versions a client may ask for and get (the client's own if we know it, else ours).
KNOWN_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
SERVER_INFO = types.Implementation(name="rensei-platform", version="0.1.0")


@router.post("/api/mcp/{session_id}", include_in_schema=False)
async def mcp_endpoint(session_id: str, request: Request) -> Response:
    session, sender = await session_for_caller(request, session_id)
    svc = services(request)
    env = ToolEnv(
        memory=svc.memory,
        ctx=MemoryContext.of(session),
        fleet=FleetOps(svc.dispatcher),
        scope=FleetScope(session.org_id, frozenset([session.project]) if session.project else None),
        sender=sender,
    )

    async def _call(params: dict[str, Any]) -> Any:
        name = params.get("name")
        if isinstance(name, str) and name not in TOOLS:
            peer = peer_tools.find(await svc.a2a.list_agents(session.org_id), name)
            args = params.get("arguments", {})
            if peer is not None and isinstance(args, dict):
                return await peer_tools.call_peer(svc.a2a, *peer, args, session.id)
        return await call_tool(env, params)

    async def handle(call: Call) -> Any:
        if call.method == "initialize":
            return _initialize(call.params)
        if call.method == "ping":
            return {}
        if call.method == "tools/list":
            peers = peer_tools.listed(await svc.a2a.list_agents(session.org_id))
            return {"tools": [tool.listed() for tool in TOOLS.values()] + peers}
        if call.method == "tools/call":
            return await _call(call.params)
        if call.method.startswith("notifications/"):
            return None
        raise RpcError(jsonrpc.METHOD_NOT_FOUND, f"Method not found: {call.method}")

    return await jsonrpc.serve(await request.body(), handle)


def _initialize(params: dict[str, Any]) -> dict[str, Any]:
    asked = params.get("protocolVersion")
    version = asked if asked in KNOWN_VERSIONS else PROTOCOL_VERSION
    result = types.InitializeResult(
        protocolVersion=version,
        capabilities=types.ServerCapabilities(tools=types.ToolsCapability()),
        serverInfo=SERVER_INFO,
    )
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")
