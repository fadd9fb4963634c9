"""An agent's tools as the model sees them, and who runs each call with what permission.

The `agent_toolset_20260401` tools that the SDK's worker runs (bash, read, write, edit, glob,
grep) become Messages API tool definitions; `custom` tools go to the model unchanged and are
answered by the client (`agent.custom_tool_use`). web_fetch, web_search and MCP toolsets are
tools shopfloor cannot run, so the model is not offered them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOOLSET = "agent_toolset_20260401"
CUSTOM = "custom"
MCP_TOOLSET = "mcp_toolset"
ALL_TOOLSET_NAMES = ("bash", "read", "write", "edit", "glob", "grep", "web_fetch", "web_search")
POLICIES = ("always_allow", "always_ask", "auto")


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


_PATH = {"type": "string", "description": "Path of the file, relative to the working directory"}
WORKER_TOOLS: dict[str, dict[str, Any]] = {
    "bash": {
        "description": "Run a shell command in a persistent bash session; returns its output.",
        "input_schema": _schema(
            {
                "command": {"type": "string", "description": "The command to run"},
                "restart": {"type": "boolean", "description": "Restart the shell session"},
                "timeout_ms": {"type": "integer", "description": "Timeout in milliseconds"},
            },
            [],
        ),
    },
    "read": {
        "description": "Read a file (text, or an image or PDF).",
        "input_schema": _schema(
            {
                "file_path": _PATH,
                "view_range": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "description": "[start, end] lines, 1-based; end <= 0 reads to the end",
                },
            },
            ["file_path"],
        ),
    },
    "write": {
        "description": "Write a file, replacing what it held.",
        "input_schema": _schema(
            {"file_path": _PATH, "content": {"type": "string"}}, ["file_path", "content"]
        ),
    },
    "edit": {
        "description": "Replace a string in a file (it must be unique unless replace_all).",
        "input_schema": _schema(
            {
                "file_path": _PATH,
                "old_string": {"type": "string"},
                "new_string": {"type": "string"},
                "replace_all": {"type": "boolean"},
            },
            ["file_path", "old_string", "new_string"],
        ),
    },
    "glob": {
        "description": "Find files by glob pattern, newest first.",
        "input_schema": _schema(
            {"pattern": {"type": "string"}, "path": {"type": "string"}}, ["pattern"]
        ),
    },
    "grep": {
        "description": "Search file contents with a regular expression.",
        "input_schema": _schema(
            {"pattern": {"type": "string"}, "path": {"type": "string"}}, ["pattern"]
        ),
    },
}


@dataclass(frozen=True)
class Toolbox:
    """The tools of one agent snapshot: worker tools with their permission, custom tools."""

    worker: dict[str, str]  # name -> "allow" | "ask"
    custom: dict[str, dict[str, Any]]  # name -> the tool as given

    def definitions(self) -> list[dict[str, Any]]:
        """The `tools` of a Messages API request."""
        out = [{"name": name, **WORKER_TOOLS[name]} for name in self.worker]
        for tool in self.custom.values():
            definition = {"name": tool["name"], "input_schema": tool["input_schema"]}
            if tool.get("description"):
                definition["description"] = tool["description"]
            out.append(definition)
        return out


def toolbox(agent: dict[str, Any]) -> Toolbox:
    worker: dict[str, str] = {}
    custom: dict[str, dict[str, Any]] = {}
    for tool in agent.get("tools") or []:
        if tool.get("type") == TOOLSET:
            worker.update(_toolset(tool))
        elif tool.get("type") == CUSTOM:
            custom[tool["name"]] = tool
    return Toolbox(worker, custom)


def _toolset(tool: dict[str, Any]) -> dict[str, str]:
    """The worker tools the toolset offers. `enabled_tools` (when given) lists the only ones
    on by default; `disallowed_tools` are off whatever a config says."""
    default = tool.get("default_config") or {}
    configs = {c["name"]: c for c in tool.get("configs") or []}
    listed = tool.get("enabled_tools")
    withheld = set(tool.get("disallowed_tools") or ())
    enabled: dict[str, str] = {}
    for name in WORKER_TOOLS:
        config = configs.get(name, {})
        on = config.get("enabled")
        if on is None:
            on = default.get("enabled", True) if listed is None else name in listed
        if not on or name in withheld:
            continue
        policy = config.get("permission_policy") or default.get("permission_policy") or {}
        enabled[name] = "ask" if policy.get("type") == "always_ask" else "allow"
    return enabled
