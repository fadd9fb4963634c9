"""A session's timeline entries as the console shows them: one line of text each."""

from __future__ import annotations

import json
from typing import Any

from shopfloor.api.timefmt import iso
from shopfloor.store.records import SessionEvent


def describe(ev: SessionEvent) -> str:
    data: dict[str, Any] = ev.data or {}
    if ev.kind == "status":
        return f"{ev.status}" + (f": {ev.reason}" if ev.reason else "")
    if ev.kind == "activity":
        tool = f" {data['toolName']}" if data.get("toolName") else ""
        return f"{data.get('type', '')}{tool} {data.get('content', '')}".strip()
    if ev.kind == "progress":
        return f"{data.get('milestone') or ''} {data.get('message') or ''}".strip()
    if ev.kind == "completion":
        return str(data.get("summary", ""))
    if ev.kind == "inbox":
        return f"{data.get('type')} queued: {data.get('payload', '')}"
    return json.dumps(data, sort_keys=True)


def entry(ev: SessionEvent) -> dict[str, Any]:
    return {
        "id": ev.id or 0,
        "at": iso(ev.at),
        "kind": ev.kind,
        "status": ev.status,
        "text": describe(ev)[:4000],
    }
