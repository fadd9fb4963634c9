"""The request snapshot a worker claims a conversation's run with, built from the
conversation's messages.

Messages are stored with Veryfront's conversation parts (`text`, `image`, `file`, `tool_call`,
`tool_result`, …); the snapshot carries them as UI-message parts (`text`, `file`,
`tool-<name>`, `reasoning`, `step-start`, `data-<name>`, `source-url`), the form the worker's
runtime reads (the same mapping `veryfront/chat` applies in the other direction)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shopfloor.store.run_records import MessageRecord

_TOOL_STATES = {
    "streaming": "input-streaming",
    "pending": "input-available",
    "completed": "input-available",
    "error": "output-error",
}


def snapshot_from_messages(messages: Sequence[MessageRecord]) -> dict[str, Any]:
    """{messages, tools, context, forwardedProps} for these messages, oldest first."""
    return {
        "messages": [_message(m) for m in messages],
        "tools": [],
        "context": [],
        "forwardedProps": {},
    }


def _message(message: MessageRecord) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": message.id,
        "role": message.role,
        "parts": ui_parts(message.parts),
        "createdAt": _iso(message.created_at),
    }
    if message.metadata:
        view["metadata"] = message.metadata
    return view


def ui_parts(parts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversation parts as UI-message parts; a tool call and its result become one part."""
    results = {
        str(p.get("tool_call_id")): p
        for p in parts
        if p.get("type") == "tool_result" and isinstance(p.get("tool_call_id"), str)
    }
    called = {str(p.get("id")) for p in parts if p.get("type") == "tool_call"}
    out: list[dict[str, Any]] = []
    for part in parts:
        kind = part.get("type")
        if kind == "tool_call":
            out.append(_tool_part(part, results.get(str(part.get("id")))))
        elif kind == "tool_result" and part.get("tool_call_id") in called:
            continue  # folded into its call
        else:
            out.append(_simple_part(part))
    return out


def _tool_part(call: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
    name = str(call.get("name"))
    part: dict[str, Any] = {
        "type": f"tool-{name}",
        "toolCallId": call.get("id"),
        "toolName": name,
        "input": call.get("input"),
        "state": _TOOL_STATES.get(str(call.get("state")), "input-available"),
    }
    if result is not None:
        if result.get("is_error"):
            part["state"] = "output-error"
            part["errorText"] = str(result.get("output"))
        else:
            part["state"] = "output-available"
            part["output"] = result.get("output")
    return part


def _simple_part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind in ("image", "file"):
        out = {
            "type": "file",
            "mediaType": part.get("media_type"),
            "uploadId": part.get("upload_id"),
        }
        for key in ("url", "filename"):
            if part.get(key) is not None:
                out[key] = part[key]
        return out
    if kind == "step_start":
        return {"type": "step-start"}
    if kind == "data":
        return {"type": f"data-{part.get('name')}", "data": part.get("value")}
    if kind == "citation":
        out = {"type": "source-url", "sourceId": part.get("source_id")}
        for key in ("url", "title"):
            if part.get(key) is not None:
                out[key] = part[key]
        return out
    return dict(part)  # text, reasoning and error parts read the same in both forms


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
