"""Remote A2A agents' skills as MCP tools of a session (rensei-platform.md §7.2): one tool per
skill of every agent its organisation registered, `<agentSlug>.<skillId>` and the legacy
alias `a2a_<agentSlug>_<skillId>`. A call sends the arguments to the agent (`message/send`),
is recorded as a `transparent` dispatch, and answers the agent's text; a failing agent is a
tool error."""

from __future__ import annotations

import json
from typing import Any

from mcp import types

from shopfloor.api.jsonrpc import INVALID_PARAMS, RpcError
from shopfloor.outbound.a2a_peers import PeerError
from shopfloor.service.a2a_registry import A2aRegistry
from shopfloor.store.a2a_records import A2aAgentRecord

LEGACY = "a2a_"
ANY_OBJECT = {"type": "object", "additionalProperties": True}
TEXT_ARGUMENTS = ("text", "message", "prompt", "query", "input")
MAX_TEXT = 100_000


def listed(agents: list[A2aAgentRecord]) -> list[dict[str, Any]]:
    tools = []
    for agent in agents:
        for skill in agent.card["skills"]:
            schema = skill.get("inputSchema") or ANY_OBJECT
            what = f"Invokes the {skill.get('name') or skill['id']} skill on remote A2A agent "
            for name in (f"{agent.slug}.{skill['id']}", f"{LEGACY}{agent.slug}_{skill['id']}"):
                tool = types.Tool(
                    name=name, description=what + agent.card["name"], inputSchema=schema
                )
                tools.append(tool.model_dump(by_alias=True, exclude_none=True, mode="json"))
    return tools


def find(agents: list[A2aAgentRecord], name: str) -> tuple[A2aAgentRecord, str] | None:
    for agent in agents:
        for skill in agent.card["skills"]:
            if name in (f"{agent.slug}.{skill['id']}", f"{LEGACY}{agent.slug}_{skill['id']}"):
                return agent, skill["id"]
    return None


async def call_peer(
    registry: A2aRegistry,
    agent: A2aAgentRecord,
    skill_id: str,
    args: dict[str, Any],
    session_id: str,
) -> dict[str, Any]:
    text = next((args[k] for k in TEXT_ARGUMENTS if isinstance(args.get(k), str)), None)
    text = text if text is not None else json.dumps(args)
    if len(text) > MAX_TEXT:
        raise RpcError(INVALID_PARAMS, f"Invalid params: arguments over {MAX_TEXT} characters")
    if "\x00" in text:
        raise RpcError(INVALID_PARAMS, "Invalid params: arguments hold a NUL character")
    try:
        dispatch, output = await registry.dispatch(agent, skill_id, text, session_id=session_id)
    except PeerError as exc:
        return _result(f"The agent {agent.card['name']} failed: {exc.message}", is_error=True)
    del dispatch
    return _result(output)


def _result(text: str, *, is_error: bool = False) -> dict[str, Any]:
    content = types.TextContent(type="text", text=text)
    result = types.CallToolResult(content=[content], isError=is_error)
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")
