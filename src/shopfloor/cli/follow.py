"""`shopfloor sessions show ID --follow` and `shopfloor runs show RUN --follow`: print a
session's timeline, or a run's events, as they grow."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from shopfloor.client import OperatorClient

RECONNECT_ATTEMPTS = 5
console = Console(highlight=False)


def describe(entry: dict[str, Any]) -> str:
    """One line for a timeline entry."""
    kind, data = entry["type"], entry.get("data") or {}
    if kind == "status":
        text = f"[bold]{entry.get('status')}[/]"
        if entry.get("reason"):
            text += f"  {escape(str(entry['reason']))}"
        return text
    if kind == "activity":
        tool = f" {data['toolName']}" if data.get("toolName") else ""
        return f"[cyan]{escape(str(data.get('type')))}{escape(tool)}[/] " + escape(
            str(data.get("content", ""))
        )
    if kind == "progress":
        return f"[green]{escape(str(data.get('milestone') or ''))}[/] " + escape(
            str(data.get("message") or "")
        )
    if kind == "completion":
        return escape(str(data.get("summary", "")))
    if kind == "inbox":
        return f"[yellow]{data.get('type')}[/] queued: " + escape(str(data.get("payload", "")))
    return escape(json.dumps(data, sort_keys=True))


def follow_timeline(
    client: OperatorClient, session_id: str, interval: float, as_json: bool
) -> None:
    """Print every timeline entry as the server streams it (GET /api/v1/sessions/{id}/events);
    return once the session has ended and its last entries are printed. A stream the server
    ends (it bounds their length) or a dropped connection is resumed after the last entry
    printed, `interval` seconds later."""
    after, failures = 0, 0
    while True:
        try:
            for message in client.stream_session_events(session_id, after):
                failures = 0
                data = json.loads(message.get("data") or "null")
                if message.get("event") == "end":
                    if not as_json:
                        console.print(f"session {session_id} ended: [bold]{data['status']}[/]")
                    return
                after = int(message["id"])
                if as_json:
                    print(json.dumps(data), flush=True)
                else:
                    console.print(
                        f"[dim]{data['at']}[/] [magenta]{data['type']:<14}[/] {describe(data)}"
                    )
        except httpx.TransportError:
            failures += 1
            if failures >= RECONNECT_ATTEMPTS:
                raise
        time.sleep(interval)


# -- `shopfloor runs show RUN --follow`: a Veryfront run's events, over server-sent events --


def describe_run_event(event: dict[str, Any]) -> str:
    """One line for an AG-UI event of a run."""
    payload = event.get("payload") or {}
    kind = event.get("event_type")
    if kind in ("TEXT_MESSAGE_CONTENT", "REASONING_MESSAGE_CONTENT", "TOOL_CALL_ARGS"):
        return escape(str(payload.get("delta", "")))
    if kind == "TOOL_CALL_START":
        return f"[cyan]{escape(str(payload.get('toolCallName')))}[/] {payload.get('toolCallId')}"
    if kind == "TOOL_CALL_RESULT":
        return f"{payload.get('toolCallId')}: " + escape(str(payload.get("content", "")))
    if kind == "CUSTOM":
        value = json.dumps(payload.get("value"), sort_keys=True)
        return f"[yellow]{escape(str(payload.get('name')))}[/] " + escape(value)
    rest = {k: v for k, v in payload.items() if k != "type"}
    return escape(json.dumps(rest, sort_keys=True)) if rest else ""


def follow_run(client: OperatorClient, run_id: str, as_json: bool) -> str:
    """Print a run's events as they are appended; return its final status once it ends.
    A stream the server ends (it bounds their length) or a dropped connection is resumed
    after the last event printed."""
    after, failures = 0, 0
    while True:
        try:
            for message in client.stream_run_events(run_id, after):
                failures = 0
                data = json.loads(message.get("data") or "null")
                if message.get("event") == "run.ended":
                    if as_json:
                        print(json.dumps(data), flush=True)
                    else:
                        console.print(f"run {run_id} ended: [bold]{data['status']}[/]")
                    return str(data["status"])
                after = int(message["id"])
                if as_json:
                    print(json.dumps(data), flush=True)
                else:
                    console.print(
                        f"[dim]{data['created_at']}[/] [magenta]{data['event_type']:<26}[/] "
                        + describe_run_event(data)
                    )
        except httpx.TransportError:
            failures += 1
            if failures >= RECONNECT_ATTEMPTS:
                raise
            time.sleep(1.0)
