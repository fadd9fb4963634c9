"""Request bodies of the managed-agents API, checked field by field: a bad field is a 400
that names it (`events[0].content: …`), and nothing is written."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from fastapi import Request

from shopfloor.api.envelope import ApiError, has_nul, parse_json_object
from shopfloor.api.environments import wire as env_wire
from shopfloor.service.managed import events as ev
from shopfloor.service.managed.sessions import AgentRef
from shopfloor.service.managed.state import Input
from shopfloor.service.managed.tools import (
    ALL_TOOLSET_NAMES,
    CUSTOM,
    MCP_TOOLSET,
    POLICIES,
    TOOLSET,
    WORKER_TOOLS,
)

EVENTS_BODY_MAX = 32 * 1024 * 1024  # tool results may carry images and PDFs
NAME_MAX = 256
SYSTEM_MAX = 100_000
TOOLS_MAX = 256
EVENTS_MAX = 50
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
AGENT_FIELDS = (
    "name",
    "model",
    "system",
    "description",
    "tools",
    "skills",
    "mcp_servers",
    "metadata",
    "multiagent",
    "execution_identity",
)
OVERRIDABLE = ("model", "system", "tools", "skills", "mcp_servers")
SERVICE_ACCOUNT = {"type": "service_account"}


async def body(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The JSON object body (its size bounded by the route's limit, api/limits.py). NUL is
    let through here: each field's parser decides (tool output may hold it)."""
    return parse_json_object(await request.body(), empty_ok=empty_ok, nul_ok=True)


T = TypeVar("T")


def no_nul(value: T, name: str) -> T:
    if has_nul(value):
        raise ApiError(400, f"{name}: must not contain the NUL character (\\u0000)")
    return value


def _without_nul(value: Any) -> Any:
    """Tool output as text can hold NUL, which no database text column takes: U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    return value


def only(obj: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise ApiError(400, f"{where}{key}: unknown field")


def _obj(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(400, f"{name}: must be an object")
    return value


def _list(value: Any, name: str, maximum: int) -> list[Any]:
    if not isinstance(value, list):
        raise ApiError(400, f"{name}: must be an array")
    if len(value) > maximum:
        raise ApiError(400, f"{name}: at most {maximum} items")
    return value


def string(value: Any, name: str, *, maximum: int, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"{name}: must be a string")
    if not empty_ok and not value.strip():
        raise ApiError(400, f"{name}: must not be empty")
    if len(value) > maximum:
        raise ApiError(400, f"{name}: at most {maximum} characters")
    return value


def _opt_text(value: Any, name: str, maximum: int) -> str | None:
    """A clearable text field: null or "" is none."""
    if value is None or value == "":
        return None
    return string(value, name, maximum=maximum)


def _bool(value: Any, name: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, f"{name}: must be a boolean")
    return value


def _int(value: Any, name: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ApiError(400, f"{name}: must be an integer >= {minimum}")
    return value


def metadata(obj: Mapping[str, Any], *, patch: bool) -> dict[str, str | None] | None:
    """`metadata`: a string map (≤16 pairs); as a patch, null deletes a key."""
    return env_wire.metadata_patch(obj, empty_deletes=False, allow_null=patch)


# -- agents --


def model(value: Any, name: str = "model") -> dict[str, Any]:
    if isinstance(value, str):
        return {"id": string(value, name, maximum=NAME_MAX)}
    config = _obj(value, name)
    only(config, ("id", "effort", "speed", "inference_geo", "context_window"), f"{name}.")
    out: dict[str, Any] = {"id": string(config.get("id"), f"{name}.id", maximum=NAME_MAX)}
    for key in ("speed", "inference_geo"):
        if config.get(key) is not None:
            out[key] = string(config[key], f"{name}.{key}", maximum=64)
    if config.get("effort") is not None:
        out["effort"] = _effort(config["effort"], f"{name}.effort")
    if config.get("context_window") is not None:
        out["context_window"] = _int(config["context_window"], f"{name}.context_window", 1)
    return out


def _effort(value: Any, name: str) -> str | dict[str, str]:
    """A level's name, or qca's `{"type": <level>}`."""
    if isinstance(value, dict):
        only(value, ("type",), f"{name}.")
        return {"type": string(value.get("type"), f"{name}.type", maximum=64)}
    return string(value, name, maximum=64)


def tools(value: Any, name: str = "tools") -> list[dict[str, Any]]:
    if value is None:
        return []
    items = _list(value, name, TOOLS_MAX)
    out = [_tool(_obj(t, f"{name}[{i}]"), f"{name}[{i}]") for i, t in enumerate(items)]
    custom = [t["name"] for t in out if t["type"] == CUSTOM]
    if len(set(custom)) != len(custom):
        raise ApiError(400, f"{name}: custom tool names must be unique")
    clash = set(custom) & set(WORKER_TOOLS) if any(t["type"] == TOOLSET for t in out) else set()
    if clash:
        raise ApiError(400, f"{name}: custom tool {sorted(clash)[0]!r} clashes with a toolset tool")
    return out


def _tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    kind = tool.get("type")
    if kind == TOOLSET:
        only(
            tool,
            ("type", "configs", "default_config", "enabled_tools", "disallowed_tools"),
            f"{where}.",
        )
        out: dict[str, Any] = {"type": TOOLSET, "configs": [], "default_config": None}
        for i, config in enumerate(_list(tool.get("configs") or [], f"{where}.configs", 16)):
            out["configs"].append(_tool_config(config, f"{where}.configs[{i}]", named=True))
        if tool.get("default_config") is not None:
            out["default_config"] = _tool_config(
                tool["default_config"], f"{where}.default_config", named=False
            )
        # qca's shorthand: the toolset's tools to offer, or to withhold.
        for key in ("enabled_tools", "disallowed_tools"):
            if tool.get(key) is not None:
                out[key] = _tool_names(tool[key], f"{where}.{key}")
        return out
    if kind == CUSTOM:
        only(tool, ("type", "name", "description", "input_schema"), f"{where}.")
        name = string(tool.get("name"), f"{where}.name", maximum=64)
        if not TOOL_NAME.match(name):
            raise ApiError(400, f"{where}.name: letters, digits, _ and - only")
        schema = _obj(tool.get("input_schema"), f"{where}.input_schema")
        if schema.get("type") != "object":
            raise ApiError(400, f'{where}.input_schema.type: must be "object"')
        out = {"type": CUSTOM, "name": name, "input_schema": schema}
        if tool.get("description") is not None:
            out["description"] = string(tool["description"], f"{where}.description", maximum=10_000)
        return no_nul(out, where)
    if kind == MCP_TOOLSET:
        only(tool, ("type", "mcp_server_name", "configs", "default_config"), f"{where}.")
        string(tool.get("mcp_server_name"), f"{where}.mcp_server_name", maximum=NAME_MAX)
        return no_nul(dict(tool), where)
    raise ApiError(400, f"{where}.type: must be {TOOLSET}, {CUSTOM} or {MCP_TOOLSET}")


def _tool_names(value: Any, where: str) -> list[str]:
    names = _list(value, where, len(ALL_TOOLSET_NAMES))
    for i, name in enumerate(names):
        if name not in ALL_TOOLSET_NAMES:
            raise ApiError(400, f"{where}[{i}]: must be one of {', '.join(ALL_TOOLSET_NAMES)}")
    return list(names)


def _tool_config(value: Any, where: str, *, named: bool) -> dict[str, Any]:
    config = _obj(value, where)
    only(
        config,
        ("name", "type", "enabled", "permission_policy")
        if named
        else ("enabled", "permission_policy"),
        f"{where}.",
    )
    out: dict[str, Any] = {}
    if named:
        # qca's tool configs name the tool in `type` too (`{"type": "bash", "name": "bash"}`).
        name = config.get("name", config.get("type"))
        if name not in ALL_TOOLSET_NAMES:
            raise ApiError(400, f"{where}.name: must be one of {', '.join(ALL_TOOLSET_NAMES)}")
        if config.get("type") is not None and config["type"] != name:
            raise ApiError(400, f"{where}.type: must be the tool's name, {name}")
        out["name"] = name
    if config.get("enabled") is not None:
        out["enabled"] = _bool(config["enabled"], f"{where}.enabled")
    if config.get("permission_policy") is not None:
        policy = _obj(config["permission_policy"], f"{where}.permission_policy")
        if policy.get("type") not in POLICIES:
            raise ApiError(
                400, f"{where}.permission_policy.type: must be one of {', '.join(POLICIES)}"
            )
        out["permission_policy"] = {"type": policy["type"]}
    return out


def skills(value: Any, name: str = "skills") -> list[Any]:
    if value:
        raise ApiError(400, f"{name}: shopfloor serves no skills; send an empty list")
    return []


def mcp_servers(value: Any, name: str = "mcp_servers") -> list[dict[str, Any]]:
    out = []
    for i, server in enumerate(_list(value or [], name, 20)):
        server = _obj(server, f"{name}[{i}]")
        only(server, ("type", "name", "url"), f"{name}[{i}].")
        if server.get("type") != "url":
            raise ApiError(400, f'{name}[{i}].type: must be "url"')
        out.append(
            {
                "type": "url",
                "name": string(server.get("name"), f"{name}[{i}].name", maximum=NAME_MAX),
                "url": string(server.get("url"), f"{name}[{i}].url", maximum=2048),
            }
        )
    return out


def _multiagent(value: Any) -> None:
    if value is not None:
        raise ApiError(400, "multiagent: shopfloor runs single-agent sessions only; send null")


def _identity(value: Any) -> dict[str, Any]:
    if value is None:
        return dict(SERVICE_ACCOUNT)
    return no_nul(_obj(value, "execution_identity"), "execution_identity")


_FIELD_PARSERS = {
    "model": model,
    "tools": tools,
    "skills": skills,
    "mcp_servers": mcp_servers,
}


def new_agent(obj: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/agents: the agent's first definition."""
    only(obj, AGENT_FIELDS, "")
    if obj.get("model") is None:
        raise ApiError(400, "model: is required")
    _multiagent(obj.get("multiagent"))
    return {
        "name": no_nul(string(obj.get("name"), "name", maximum=NAME_MAX), "name"),
        "model": no_nul(model(obj["model"]), "model"),
        "system": no_nul(_opt_text(obj.get("system"), "system", SYSTEM_MAX), "system"),
        "description": no_nul(
            _opt_text(obj.get("description"), "description", 2048), "description"
        ),
        "tools": tools(obj.get("tools")),
        "skills": skills(obj.get("skills")),
        "mcp_servers": mcp_servers(obj.get("mcp_servers")),
        "metadata": {k: v for k, v in (metadata(obj, patch=False) or {}).items() if v is not None},
        "multiagent": None,
        "execution_identity": _identity(obj.get("execution_identity")),
    }


def agent_update(
    obj: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, str | None] | None, int | None]:
    """POST /v1/agents/{id}: whole-field changes, the metadata patch, the expected version."""
    only(obj, (*AGENT_FIELDS, "version"), "")
    changes: dict[str, Any] = {}
    if "name" in obj:
        changes["name"] = no_nul(string(obj["name"], "name", maximum=NAME_MAX), "name")
    if "model" in obj:
        changes["model"] = no_nul(model(obj["model"]), "model")
    for key, maximum in (("system", SYSTEM_MAX), ("description", 2048)):
        if key in obj:
            changes[key] = no_nul(_opt_text(obj[key], key, maximum), key)
    for key in ("tools", "skills", "mcp_servers"):
        if key in obj:
            changes[key] = _FIELD_PARSERS[key](obj[key])
    if "multiagent" in obj:
        _multiagent(obj["multiagent"])
    if "execution_identity" in obj:
        changes["execution_identity"] = _identity(obj["execution_identity"])
    version = None if obj.get("version") is None else _int(obj["version"], "version", 1)
    return changes, metadata(obj, patch=True), version


# -- sessions --

SESSION_FIELDS = (
    "agent",
    "environment_id",
    "initial_events",
    "resources",
    "metadata",
    "title",
    "vault_ids",
    "budget",
    "environment_variables",  # qca
    "memory_store_ids",  # qoder-agent-sdk
)
SESSION_UPDATE_FIELDS = (
    "title",
    "metadata",
    "agent",
    "vault_ids",
    "budget",
    "environment_variables",
)


def agent_ref(value: Any) -> AgentRef:
    if isinstance(value, str):
        return AgentRef(string(value, "agent", maximum=NAME_MAX))
    ref = _obj(value, "agent")
    kind = ref.get("type")
    if kind == "agent":
        only(ref, ("type", "id", "version"), "agent.")
    elif kind == "agent_with_overrides":
        only(ref, ("type", "id", "version", *OVERRIDABLE), "agent.")
    else:
        raise ApiError(400, 'agent.type: must be "agent" or "agent_with_overrides"')
    agent_id = string(ref.get("id"), "agent.id", maximum=NAME_MAX)
    version = None if ref.get("version") is None else _int(ref["version"], "agent.version", 1)
    overrides: dict[str, Any] = {}
    for key in OVERRIDABLE:
        if ref.get(key) is None:
            continue
        if key == "system":
            overrides[key] = no_nul(_opt_text(ref[key], "agent.system", SYSTEM_MAX), "agent.system")
        else:
            overrides[key] = _FIELD_PARSERS[key](ref[key], f"agent.{key}")
    return AgentRef(agent_id, version, overrides)


def resources(value: Any) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(_list(value or [], "resources", 100)):
        resource = _obj(item, f"resources[{i}]")
        kind = resource.get("type")
        if kind == "memory_store":
            raise ApiError(400, f"resources[{i}].type: shopfloor attaches no memory stores")
        if kind not in ("github_repository", "file"):
            raise ApiError(400, f'resources[{i}].type: must be "github_repository" or "file"')
        out.append(no_nul(dict(resource), f"resources[{i}]"))
    return out


def session_extras(obj: dict[str, Any]) -> None:
    if obj.get("vault_ids"):
        raise ApiError(400, "vault_ids: vaults are not supported; send an empty list")
    if obj.get("budget") is not None:
        raise ApiError(400, "budget: budgets are not supported; send null")
    if obj.get("memory_store_ids"):
        raise ApiError(400, "memory_store_ids: memory stores are not supported; send none")
    if obj.get("environment_variables"):
        raise ApiError(
            400,
            "environment_variables: a session's environment variables are not supported "
            "(the worker's environment is its own); send none",
        )


def title(value: Any) -> str | None:
    if value is None:
        return None
    return no_nul(string(value, "title", maximum=1000, empty_ok=True), "title")


# -- events --

_BLOCK_TYPES = ("text", "image", "document")
_RESULT_BLOCK_TYPES = ("text", "image", "document", "search_result")


def _content(value: Any, name: str, types: tuple[str, ...], *, required: bool) -> list[Any]:
    if value is None:
        if required:
            raise ApiError(400, f"{name}: is required")
        return []
    if isinstance(value, str):
        value = [{"type": "text", "text": value}]
    blocks = _list(value, name, 1000)
    if required and not blocks:
        raise ApiError(400, f"{name}: must not be empty")
    for i, block in enumerate(blocks):
        where = f"{name}[{i}]"
        block = _obj(block, where)
        if block.get("type") not in types:
            raise ApiError(400, f"{where}.type: must be one of {', '.join(types)}")
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            raise ApiError(400, f"{where}.text: must be a string")
        if block["type"] in ("image", "document") and not isinstance(block.get("source"), dict):
            raise ApiError(400, f"{where}.source: must be an object")
    return blocks


def _thread(event: dict[str, Any], where: str) -> None:
    thread = event.get("session_thread_id")
    if thread is not None and not isinstance(thread, str):
        raise ApiError(400, f"{where}.session_thread_id: must be a string or null")


def event(value: Any, where: str, allowed: tuple[str, ...] = ev.SENDABLE) -> Input:
    item = _obj(value, where)
    kind = item.get("type")
    if kind not in allowed:
        raise ApiError(400, f"{where}.type: must be one of {', '.join(allowed)}")
    _thread(item, where)
    if kind in (ev.USER_TOOL_RESULT, ev.USER_CUSTOM_TOOL_RESULT):
        key = "tool_use_id" if kind == ev.USER_TOOL_RESULT else "custom_tool_use_id"
        only(item, ("type", key, "content", "is_error", "session_thread_id"), f"{where}.")
        fields: dict[str, Any] = {
            key: no_nul(string(item.get(key), f"{where}.{key}", maximum=NAME_MAX), key),
            "content": _without_nul(
                _content(
                    item.get("content"), f"{where}.content", _RESULT_BLOCK_TYPES, required=False
                )
            ),
            "is_error": bool(_bool(item.get("is_error"), f"{where}.is_error")),
        }
        return Input(kind, fields)
    no_nul(item, where)
    if kind == ev.USER_MESSAGE:
        only(item, ("type", "content", "session_thread_id"), f"{where}.")
        content = _content(item.get("content"), f"{where}.content", _BLOCK_TYPES, required=True)
        return Input(kind, {"content": content})
    if kind == ev.USER_TOOL_CONFIRMATION:
        only(
            item,
            ("type", "tool_use_id", "result", "deny_message", "session_thread_id"),
            f"{where}.",
        )
        if item.get("result") not in ("allow", "deny"):
            raise ApiError(400, f'{where}.result: must be "allow" or "deny"')
        fields = {
            "tool_use_id": string(
                item.get("tool_use_id"), f"{where}.tool_use_id", maximum=NAME_MAX
            ),
            "result": item["result"],
        }
        if item.get("deny_message") is not None:
            fields["deny_message"] = string(
                item["deny_message"], f"{where}.deny_message", maximum=10_000, empty_ok=True
            )
        return Input(kind, fields)
    if kind == ev.USER_INTERRUPT:
        only(item, ("type", "session_thread_id"), f"{where}.")
        return Input(kind, {})
    if kind == ev.SYSTEM_MESSAGE:
        only(item, ("type", "content"), f"{where}.")
        return Input(
            kind,
            {
                "content": _content(
                    item.get("content"), f"{where}.content", ("text",), required=True
                )
            },
        )
    # user.define_outcome: kept as sent.
    return Input(kind, {k: v for k, v in item.items() if k != "type"})


def events(obj: dict[str, Any], name: str = "events") -> list[Input]:
    items = _list(obj.get(name), name, EVENTS_MAX) if name in obj else None
    if items is None:
        raise ApiError(400, f"{name}: is required")
    if not items:
        raise ApiError(400, f"{name}: must not be empty")
    return [event(item, f"{name}[{i}]") for i, item in enumerate(items)]


def initial_events(value: Any) -> list[Input]:
    if value is None:
        return []
    items = _list(value, "initial_events", EVENTS_MAX)
    allowed = (ev.USER_MESSAGE, ev.USER_DEFINE_OUTCOME)
    return [event(item, f"initial_events[{i}]", allowed) for i, item in enumerate(items)]
