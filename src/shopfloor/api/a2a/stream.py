"""A2A streaming: a task and then each change of its state, as server-sent events whose data
are JSON-RPC replies (the Task, then `status-update` events, the last one `final`). The
session is read again every POLL_SECONDS (a session's status changes on any server process,
and is one indexed read); a comment keeps the connection alive; a stream ends when the task
does, when the client goes, or after MAX_STREAM_SECONDS (resubscribe with `tasks/resubscribe`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from shopfloor.api.a2a.tasks import task_view
from shopfloor.api.jsonrpc import Call, RequestId
from shopfloor.store import Store
from shopfloor.store.records import SessionRecord

STREAMED = ("message/stream", "tasks/resubscribe")
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
MAX_STREAM_SECONDS = 3600.0
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


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
    task = task_view(session)
    yield _frame(request_id, task)
    state, started, quiet_since = task["status"]["state"], time.monotonic(), time.monotonic()
    while not session.is_terminal and time.monotonic() - started < MAX_STREAM_SECONDS:
        await asyncio.sleep(POLL_SECONDS)
        if await request.is_disconnected():
            return
        found = await store.get_session(session.id)
        if found is None:
            return
        session = found
        task = task_view(session)
        if task["status"]["state"] != state:
            state, quiet_since = task["status"]["state"], time.monotonic()
            yield _frame(request_id, _update(task, session.is_terminal))
        elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield b": keep-alive\n\n"


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
