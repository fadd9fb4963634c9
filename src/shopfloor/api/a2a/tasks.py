"""An A2A task as a view of a shopfloor session: the task id is the session id, its state
follows the session's status."""

from __future__ import annotations

from typing import Any

from shopfloor.api.timefmt import iso
from shopfloor.store.records import (
    CLAIMED,
    COMPLETED,
    FAILED,
    FINALIZING,
    PARKED,
    PENDING,
    RUNNING,
    STOPPED,
    SessionRecord,
)

# Queued (or parked behind its issue's lock) is `submitted`; held by a worker is `working`;
# an operator's or an A2A client's stop is `canceled`.
STATES = {
    PENDING: "submitted",
    PARKED: "submitted",
    CLAIMED: "working",
    RUNNING: "working",
    FINALIZING: "working",
    COMPLETED: "completed",
    FAILED: "failed",
    STOPPED: "canceled",
}
CONTEXT_KEY = "a2aContextId"
MESSAGE_KEY = "a2aMessageId"


def task_view(session: SessionRecord) -> dict[str, Any]:
    context_id = str(session.extra.get(CONTEXT_KEY) or session.id)
    status: dict[str, Any] = {
        "state": STATES.get(session.status, "unknown"),
        "timestamp": iso(session.updated_at),
    }
    if session.status == FAILED and session.error_message:
        status["message"] = _message("agent", session.error_message, f"{session.id}-error")
    task: dict[str, Any] = {
        "kind": "task",
        "id": session.id,
        "contextId": context_id,
        "status": status,
        "metadata": {
            "sessionStatus": session.status,
            "projectName": session.project,
            "workType": session.work_type,
        },
    }
    if session.prompt:
        message_id = str(session.extra.get(MESSAGE_KEY) or f"{session.id}-prompt")
        first = _message("user", session.prompt, message_id)
        task["history"] = [{**first, "taskId": session.id, "contextId": context_id}]
    return task


def _message(role: str, text: str, message_id: str) -> dict[str, Any]:
    return {
        "kind": "message",
        "role": role,
        "messageId": message_id,
        "parts": [{"kind": "text", "text": text}],
    }
