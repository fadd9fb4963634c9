"""Wire shapes of the managed-agents API: agent, session and event objects, pages and cursors.
Timestamps are RFC 3339 UTC (the environment API's `ts`)."""

from __future__ import annotations

import json
from typing import Any

from shopfloor.api.envelope import ApiError
from shopfloor.api.environments.wire import parse_ts, ts
from shopfloor.service.managed.agents import Agent
from shopfloor.store.managed_records import ManagedSessionRecord
from shopfloor.store.records import SessionEvent

_AGENT_DEFAULTS: dict[str, Any] = {
    "description": None,
    "system": None,
    "tools": [],
    "skills": [],
    "mcp_servers": [],
    "metadata": {},
    "multiagent": None,
    "execution_identity": {"type": "service_account"},
}


def agent(a: Agent) -> dict[str, Any]:
    return {
        **_AGENT_DEFAULTS,
        **a.definition,
        "id": a.head.id,
        "type": "agent",
        "version": a.version.version,
        "created_at": ts(a.head.created_at),
        "updated_at": ts(a.version.created_at),
        "archived_at": ts(a.head.archived_at),
    }


def session_agent(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The session's `agent` object: the snapshot it was made with."""
    out = {**_AGENT_DEFAULTS, **snapshot, "type": "agent"}
    out.pop("metadata", None)
    return out


def session(m: ManagedSessionRecord) -> dict[str, Any]:
    return {
        "id": m.session_id,
        "type": "session",
        "status": m.status,
        "environment_id": m.environment_id,
        "agent": session_agent(m.agent),
        "resources": m.resources,
        "metadata": m.metadata,
        "title": m.title,
        "created_at": ts(m.created_at),
        "updated_at": ts(m.updated_at),
        "archived_at": ts(m.archived_at),
        "outcome_evaluations": [],
        "stats": {},
        "usage": m.usage,
        "vault_ids": [],
        "budget": None,
        "deployment_id": None,
        "environment_variables": {},
    }


def thread_id(session_id: str) -> str:
    """The id of a session's primary thread (shopfloor runs one thread per session)."""
    return "sthr_" + session_id.removeprefix("sess_")


def thread(m: ManagedSessionRecord) -> dict[str, Any]:
    """The session's primary thread: its agent, status, usage and times are the session's."""
    return {
        "id": thread_id(m.session_id),
        "type": "session_thread",
        "session_id": m.session_id,
        "parent_thread_id": None,
        "agent": session_agent(m.agent),
        "status": m.status,
        "stats": {},
        "usage": m.usage,
        "created_at": ts(m.created_at),
        "updated_at": ts(m.updated_at),
        "archived_at": ts(m.archived_at),
        "workflow_run_id": None,
    }


def event(e: SessionEvent) -> dict[str, Any]:
    return {**e.data, "type": e.kind, "processed_at": ts(e.at)}


def sse_frame(e: SessionEvent) -> bytes:
    """One server-sent event: the `event:` line (the anthropic SDK drops frames without one)
    names the event type, the `id:` line is the event's id (what a client resumes from, as
    `Last-Event-ID` or `after_id`); the data is the event."""
    data = json.dumps(event(e), separators=(",", ":"))
    return f"event: {e.kind}\nid: {e.data['id']}\ndata: {data}\n\n".encode()


PING = b'event: ping\ndata: {"type":"ping"}\n\n'


def page(data: list[dict[str, Any]], next_cursor: str | None) -> dict[str, Any]:
    """A cursor page: the SDK follows `next_page` (sent back as `page`) until it is null."""
    return {
        "data": data,
        "next_page": next_cursor,
        "prev_page": None,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": next_cursor is not None,
    }


# -- query parameters --


def event_cursor(raw: str | None) -> tuple[int, int | None] | None:
    """An events page cursor: `ev_<n>`, n the position of the page's last event, or
    `ev_<n>_<m>` where the listing stops at position m (a before_id, or an after_id read
    newest first, that later pages keep)."""
    if raw is None:
        return None
    parts = raw.removeprefix("ev_").split("_")
    if (
        not raw.startswith("ev_")
        or len(parts) > 2
        or not all(p.isdigit() and len(p) <= 18 for p in parts)
    ):
        raise ApiError(400, "page: is not a valid cursor")
    return int(parts[0]), int(parts[1]) if len(parts) == 2 else None


def next_event_cursor(last: int, bound: int | None) -> str:
    return f"ev_{last}" if bound is None else f"ev_{last}_{bound}"


def time_bound(raw: str | None, name: str) -> int | None:
    if raw is None:
        return None
    try:
        return parse_ts(raw, name)
    except ApiError:
        raise ApiError(400, f"{name}: must be an RFC 3339 timestamp") from None


def order(raw: str | None) -> bool | None:
    """`order`: True for desc, False for asc, None when not given."""
    if raw is None:
        return None
    if raw not in ("asc", "desc"):
        raise ApiError(400, 'order: must be "asc" or "desc"')
    return raw == "desc"
