"""`shopfloor sessions show ID --follow`: print a session's timeline as it grows."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from shopfloor.client import OperatorClient

TERMINAL = ("completed", "failed", "stopped")
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
    """Print every new timeline entry; return once the session has ended and its last
    entries are printed."""
    cursor = 0
    while True:
        page = client.session_activity(session_id, after=cursor)
        for entry in page["activities"]:
            if as_json:
                print(json.dumps(entry), flush=True)
            else:
                console.print(
                    f"[dim]{entry['at']}[/] [magenta]{entry['type']:<14}[/] {describe(entry)}"
                )
        cursor = page["nextCursor"]
        if page["status"] in TERMINAL and not page["activities"]:
            if not as_json:
                console.print(f"session {session_id} ended: [bold]{page['status']}[/]")
            return
        time.sleep(interval)
