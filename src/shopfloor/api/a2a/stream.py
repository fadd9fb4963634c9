"""A2A streaming: a task and then each change of its state, as server-sent events whose data
are JSON-RPC replies (the Task, then `status-update` events, the last one `final`). Every
POLL_SECONDS the stream reads the session's status history after the last entry it saw (a
session's status changes on any server process), so a state that lasted less than a poll
(a task claimed and finished within half a second) is still sent; a comment keeps the
connection alive; a stream ends when the task does, when the client goes, or after
MAX_STREAM_SECONDS (resubscribe with `tasks/resubscribe`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from shopfloor.api.a2a.tasks import STATES, task_view
from shopfloor.api.jsonrpc import Call, RequestId
from shopfloor.api.timefmt import iso
from shopfloor.store import Store
from shopfloor.store.records import SessionEvent, SessionRecord

STREAMED = ("message/stream", "tasks/resubscribe")
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
MAX_STREAM_SECONDS = 3600.0
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
STATUS_EVENT = "status"  # the kind of a session's status-change history entries
HISTORY_PAGE = 200


def streamed_call(raw: bytes) -> Call | None:
    """The call, if the body is one JSON-RPC request for a streamed method (batches and
    anything malformed go the ordinary way, and get its errors)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0":
        return None
    request_id, params = body.get("id"), body.get("params", {})
    valid_id = isinstance(request_id, str) or type(request_id) is int
    if body.get("method") not in STREAMED or not valid_id or not isinstance(params, dict):
        return None
    return Call(request_id, body["method"], params, notification=False)


async def task_events(
    request: Request, store: Store, request_id: RequestId, session: SessionRecord
) -> AsyncIterator[bytes]:
    # The history position first, then the session: a change between the two is in both,
    # and is sent once (only a change of state is sent).
    after = await store.last_event_id(session.id, (STATUS_EVENT,))
    session = await store.get_session(session.id) or session
    task = task_view(session)
    yield _frame(request_id, task)
    state, started, quiet_since = task["status"]["state"], time.monotonic(), time.monotonic()
    while not session.is_terminal and time.monotonic() - started < MAX_STREAM_SECONDS:
        await asyncio.sleep(POLL_SECONDS)
        if await request.is_disconnected():
            return
        history = await store.session_events_after(session.id, after, HISTORY_PAGE)
        if history:
            after = history[-1].id or after
        for event in _status_changes(history):
            new = STATES.get(event.status or "", "unknown")
            if new != state:
                state, quiet_since = new, time.monotonic()
                yield _frame(request_id, _update(_at(task, new, event.at), final=False))
        found = await store.get_session(session.id)
        if found is None:
            return
        session = found
        if session.is_terminal:
            yield _frame(request_id, _update(task_view(session), final=True))
        elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield b": keep-alive\n\n"


def _status_changes(history: list[SessionEvent]) -> list[SessionEvent]:
    """The non-terminal status changes (the terminal one is sent from the session itself,
    with its error message)."""
    return [
        e
        for e in history
        if e.kind == STATUS_EVENT and e.status is not None and STATES.get(e.status) in _LIVE
    ]


_LIVE = ("submitted", "working")


def _at(task: dict[str, Any], state: str, at: int) -> dict[str, Any]:
    return {**task, "status": {"state": state, "timestamp": iso(at)}}


def _update(task: dict[str, Any], final: bool) -> dict[str, Any]:
    return {
        "kind": "status-update",
        "taskId": task["id"],
        "contextId": task["contextId"],
        "status": task["status"],
        "final": final,
        "metadata": task["metadata"],
    }


def _frame(request_id: RequestId, result: dict[str, Any]) -> bytes:
    reply = {"jsonrpc": "2.0", "id": request_id, "result": result}
    return f"data: {json.dumps(reply)}\n\n".encode()
