"""The MCP tools of a session (rensei-platform.md §7.2): the memory tools, with the session's
organisation, project and agent injected over whatever `context` the caller sends. Each tool
checks its arguments (a -32602 naming the field) and answers MCP's tool result: the payload
as JSON text."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp import types

from shopfloor.api.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND, RpcError
from shopfloor.api.mcp.fleet_ops import OPS, FleetCall
from shopfloor.api.mcp.fleet_tools import FLEET
from shopfloor.service import memory as limits
from shopfloor.service.errors import DomainError, InvalidInput
from shopfloor.service.fleet_ops import FleetOps, FleetScope
from shopfloor.service.memory import Memory, MemoryContext
from shopfloor.store.memory_records import MemoryHit


@dataclass(frozen=True)
class ToolEnv:
    """What a tool call of one session works with."""

    memory: Memory
    ctx: MemoryContext
    fleet: FleetOps
    scope: FleetScope
    sender: str


Run = Callable[[ToolEnv, dict[str, Any]], Awaitable[dict[str, Any]]]

_TAGS = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": limits.MAX_TAG_CHARS},
    "maxItems": limits.MAX_TAGS,
}
_SCOPE = {
    "type": "string",
    "maxLength": limits.MAX_SCOPE_CHARS,
    "description": "Narrows the memory within the project (a repository, a topic)",
}
_CONTEXT = {
    "type": "object",
    "description": "Ignored: the server sets it from the session (organisation, project, agent)",
}


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    run: Run

    def listed(self) -> dict[str, Any]:
        tool = types.Tool(
            name=self.name, description=self.description, inputSchema=self.input_schema
        )
        return tool.model_dump(by_alias=True, exclude_none=True, mode="json")


async def _remember(env: ToolEnv, args: dict[str, Any]) -> dict[str, Any]:
    content = _text(args, "content", required=True) or ""
    tags, scope = _strings(args, "tags"), _text(args, "scope")
    record = await env.memory.remember(env.ctx, content, tags, scope)
    return {"stored": True, "id": record.id, "content": record.content}


async def _recall(env: ToolEnv, args: dict[str, Any]) -> dict[str, Any]:
    query = _text(args, "query", required=True) or ""
    count = args.get("max_results", limits.DEFAULT_RESULTS)
    if type(count) is not int:
        raise RpcError(INVALID_PARAMS, "Invalid params: max_results must be an integer")
    tags, scope = _strings(args, "tags"), _text(args, "scope")
    hits = await env.memory.recall(env.ctx, query, tags, scope, count)
    return {"results": [_hit(h) for h in hits], "total": len(hits)}


async def _forget(env: ToolEnv, args: dict[str, Any]) -> dict[str, Any]:
    memory_id = _text(args, "id", required=True) or ""
    return {"deleted": await env.memory.forget(env.ctx, memory_id), "id": memory_id}


def _fleet_op(name: str) -> Run:
    async def run(env: ToolEnv, args: dict[str, Any]) -> dict[str, Any]:
        call = FleetCall(env.fleet, env.scope, env.ctx.org_id, env.sender, args)
        return await OPS[name](call)

    return run


def _hit(hit: MemoryHit) -> dict[str, Any]:
    m = hit.memory
    return {
        "id": m.id,
        "content": m.content,
        "score": round(hit.score, 6),
        "source": m.source,
        "type": m.type,
        "tags": m.tags,
        "sessionId": m.session_id,
        "timestamp": m.created_at,
    }


TOOLS = {
    tool.name: tool
    for tool in (
        Tool(
            "af_memory_remember",
            "Remember something for later sessions of this project (a fact, a pattern, a "
            "decision). Recall it with af_memory_recall.",
            {
                "type": "object",
                "properties": {
                    "content": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": limits.MAX_CONTENT_CHARS,
                    },
                    "tags": _TAGS,
                    "scope": _SCOPE,
                    "context": _CONTEXT,
                },
                "required": ["content"],
            },
            _remember,
        ),
        Tool(
            "af_memory_recall",
            "Search what this project's sessions remembered, best match first.",
            {
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": limits.MAX_QUERY_CHARS,
                    },
                    "tags": {**_TAGS, "description": "Only memories carrying all of these"},
                    "scope": _SCOPE,
                    "max_results": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": limits.MAX_RESULTS,
                        "default": limits.DEFAULT_RESULTS,
                    },
                    "context": _CONTEXT,
                },
                "required": ["query"],
            },
            _recall,
        ),
        Tool(
            "af_memory_forget",
            "Forget one memory of this project by its id.",
            {
                "type": "object",
                "properties": {"id": {"type": "string", "minLength": 1}, "context": _CONTEXT},
                "required": ["id"],
            },
            _forget,
        ),
        *(Tool(name, description, schema, _fleet_op(name)) for name, description, schema in FLEET),
    )
}


async def call_tool(env: ToolEnv, params: dict[str, Any]) -> dict[str, Any]:
    """tools/call: the tool's result, or the JSON-RPC error for an unknown tool or bad
    arguments; a task that is not found or not in a state for the call is a tool error
    (`isError`), which the agent reads as the tool's answer."""
    name = params.get("name")
    if not isinstance(name, str):
        raise RpcError(INVALID_PARAMS, "Invalid params: name is required")
    tool = TOOLS.get(name)
    if tool is None:
        raise RpcError(METHOD_NOT_FOUND, f"Tool not found: {name}")
    args = params.get("arguments", {})
    if not isinstance(args, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: arguments must be an object")
    try:
        payload = await tool.run(env, args)
    except InvalidInput as exc:
        raise RpcError(INVALID_PARAMS, f"Invalid params: {exc.message}") from None
    except DomainError as exc:
        return _result(exc.message, is_error=True)
    return _result(json.dumps(payload))


def _result(text: str, *, is_error: bool = False) -> dict[str, Any]:
    content = types.TextContent(type="text", text=text)
    result = types.CallToolResult(content=[content], isError=is_error)
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")


def _text(args: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = args.get(name)
    if value is None:
        if required:
            raise RpcError(INVALID_PARAMS, f"Invalid params: {name} is required")
        return None
    if not isinstance(value, str):
        raise RpcError(INVALID_PARAMS, f"Invalid params: {name} must be a string")
    return value


def _strings(args: dict[str, Any], name: str) -> list[str]:
    value = args.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RpcError(INVALID_PARAMS, f"Invalid params: {name} must be an array of strings")
    return value
