"""The conversation sent to the model, rebuilt from the session's stored transcript events
(`turn.input`, `turn.reply`) so that a turn resumed after a restart sends what the lost one
would have sent."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shopfloor.service.managed.events import TURN_INPUT, TURN_REPLY
from shopfloor.store.records import SessionEvent


def messages(events: Iterable[SessionEvent]) -> list[dict[str, Any]]:
    """Messages API `messages`: user inputs and model replies in order, consecutive ones of
    one role merged (tool results first in a user message, as the API wants them), empty
    ones left out."""
    out: list[dict[str, Any]] = []
    for event in events:
        if event.kind not in (TURN_INPUT, TURN_REPLY):
            continue
        role = "user" if event.kind == TURN_INPUT else "assistant"
        content = list(event.data.get("content") or [])
        if not content:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(content)
        else:
            out.append({"role": role, "content": content})
    for message in out:
        if message["role"] == "user":
            blocks = message["content"]
            message["content"] = [b for b in blocks if b.get("type") == "tool_result"] + [
                b for b in blocks if b.get("type") != "tool_result"
            ]
    return out


def tool_result_block(toolu_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """A call's result as a `tool_result` block of the next user message."""
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": toolu_id}
    content = result.get("content")
    if content:
        block["content"] = content
    if result.get("is_error"):
        block["is_error"] = True
    return block
