"""The fleet operations as MCP tools: names, descriptions and input schemas (the AF MCP
server's tools; rensei-platform.md §7.3). Bounded to the session's organisation and project."""

from __future__ import annotations

from typing import Any

from shopfloor.service.fleet_ops import DEFAULT_LIST, MAX_LIST
from shopfloor.store.records import ALL_STATUSES

_TASK_ID = {"taskId": {"type": "string", "minLength": 1, "maxLength": 200}}


def _object(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


FLEET: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "submit-task",
        "Queue a task (a session on an issue) for the fleet's workers, in this project.",
        _object(
            {
                "issueId": {"type": "string", "minLength": 1, "maxLength": 200},
                "description": {"type": "string", "maxLength": 100_000},
                "workType": {"type": "string", "maxLength": 64},
                "priority": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3},
            },
            "issueId",
        ),
    ),
    ("get-task-status", "The status of one task of this project.", _object(_TASK_ID, "taskId")),
    (
        "list-fleet",
        "This project's tasks, newest first.",
        _object(
            {
                "status": {"type": "array", "items": {"enum": list(ALL_STATUSES)}},
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_LIST,
                    "default": DEFAULT_LIST,
                },
            }
        ),
    ),
    (
        "get-cost-report",
        "Cost and tokens of one task, or of all of this project's tasks.",
        _object({"taskId": _TASK_ID["taskId"]}),
    ),
    (
        "forward-prompt",
        "Send a message to a running or claimed task's agent.",
        _object(
            {**_TASK_ID, "message": {"type": "string", "minLength": 1, "maxLength": 100_000}},
            "taskId",
            "message",
        ),
    ),
    ("stop-agent", "Stop a pending, claimed or running task.", _object(_TASK_ID, "taskId")),
)
