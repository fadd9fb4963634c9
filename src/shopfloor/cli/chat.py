"""Talking to a managed session from the terminal: print its events as they arrive, until
the turn ends (the session goes idle for any reason but waiting for tool calls) or the
session terminates."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
RESULT_PREVIEW = 400


def _texts(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    return "".join(b.get("text", "") for b in content if isinstance(b, dict))


def describe(event: dict[str, Any]) -> str | None:
    """One line (or a few) for an event; None for events not worth a line."""
    kind = event.get("type")
    if kind == "user.message":
        return f"[bold]you[/]: {escape(_texts(event.get('content')))}"
    if kind == "agent.message":
        return f"[bold green]agent[/]: {escape(_texts(event.get('content')))}"
    if kind in ("agent.tool_use", "agent.custom_tool_use"):
        ask = event.get("evaluated_permission") == "ask"
        note = f"  [yellow](needs confirmation: tool_use_id {event.get('id')})[/]" if ask else ""
        tool_input = escape(json.dumps(event.get("input"), sort_keys=True))
        return f"[cyan]tool[/] {escape(str(event.get('name')))} {tool_input}{note}"
    if kind in ("user.tool_result", "user.custom_tool_result"):
        text = _texts(event.get("content"))
        if len(text) > RESULT_PREVIEW:
            text = text[:RESULT_PREVIEW] + "…"
        marker = "[red]error[/]" if event.get("is_error") else "[dim]result[/]"
        return f"{marker} {escape(text.rstrip())}"
    if kind == "user.tool_confirmation":
        return (
            f"[yellow]{escape(str(event.get('result')))}[/] {escape(str(event.get('tool_use_id')))}"
        )
    if kind == "session.error":
        error = event.get("error") or {}
        return (
            f"[red]error[/] {escape(str(error.get('type')))}: {escape(str(error.get('message')))}"
        )
    if kind == "session.status_idle":
        reason = (event.get("stop_reason") or {}).get("type")
        return f"[dim]idle ({escape(str(reason))})[/]"
    if kind == "session.status_terminated":
        return "[bold red]session terminated[/]"
    return None


def ends_turn(event: dict[str, Any]) -> bool:
    kind = event.get("type")
    if kind in ("session.status_terminated", "session.deleted"):
        return True
    reason = (event.get("stop_reason") or {}).get("type")
    return kind == "session.status_idle" and reason != "requires_action"


def follow_turn(events: Iterable[dict[str, Any]], as_json: bool) -> dict[str, Any] | None:
    """Print events until the turn ends; returns the event that ended it (None if the
    stream ended first)."""
    for event in events:
        if as_json:
            print(json.dumps(event), flush=True)
        else:
            line = describe(event)
            if line is not None:
                console.print(line)
        if ends_turn(event):
            return event
    return None
