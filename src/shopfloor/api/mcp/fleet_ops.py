"""The fleet operations by name, over a JSON object of arguments: what the REST routes under
/api/mcp and the MCP tools both run. Bad arguments raise InvalidInput naming the field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shopfloor.api.mcp import fleet_wire as wire
from shopfloor.service.errors import InvalidInput
from shopfloor.service.fleet_ops import DEFAULT_LIST, FleetOps, FleetScope, TaskRequest

MAX_TEXT = 100_000
MAX_NAME = 200
MAX_WORK_TYPE = 64  # the sessions table's work_type column


@dataclass(frozen=True)
class FleetCall:
    fleet: FleetOps
    scope: FleetScope
    org_id: str  # where submitted tasks are queued
    sender: str  # who to name on prompts and stops
    args: dict[str, Any]


async def submit_task(c: FleetCall) -> dict[str, Any]:
    priority = c.args.get("priority", 3)
    if type(priority) is not int:
        raise InvalidInput("priority", "priority: an integer from 1 to 5")
    task = TaskRequest(
        issue_id=_text(c.args, "issueId", MAX_NAME, required=True) or "",
        description=_text(c.args, "description", MAX_TEXT),
        work_type=_text(c.args, "workType", MAX_WORK_TYPE),
        priority=priority,
        project=_text(c.args, "projectName", MAX_NAME) or _only(c.scope),
    )
    return wire.submitted(await c.fleet.submit(c.scope, task, c.org_id))


async def get_task_status(c: FleetCall) -> dict[str, Any]:
    return wire.task_view(await c.fleet.get(c.scope, _task_id(c.args)))


async def list_fleet(c: FleetCall) -> dict[str, Any]:
    statuses = c.args.get("status")
    if isinstance(statuses, str):
        statuses = [statuses]
    if statuses is not None and not (
        isinstance(statuses, list) and all(isinstance(s, str) for s in statuses)
    ):
        raise InvalidInput("status", "status: a list of statuses")
    limit = c.args.get("limit", DEFAULT_LIST)
    if type(limit) is not int:
        raise InvalidInput("limit", "limit: an integer")
    return wire.fleet(await c.fleet.list_tasks(c.scope, statuses, limit))


async def get_cost_report(c: FleetCall) -> dict[str, Any]:
    task_id = _text(c.args, "taskId", MAX_NAME)
    return wire.cost(await c.fleet.cost_report(c.scope, task_id))


async def forward_prompt(c: FleetCall) -> dict[str, Any]:
    message = _text(c.args, "message", MAX_TEXT, required=True) or ""
    session, sent = await c.fleet.forward(c.scope, _task_id(c.args), message, c.sender)
    return wire.forwarded(session, sent)


async def stop_agent(c: FleetCall) -> dict[str, Any]:
    before = await c.fleet.get(c.scope, _task_id(c.args))
    return wire.stopped(before, await c.fleet.stop(c.scope, before.id, c.sender))


OPS: dict[str, Callable[[FleetCall], Awaitable[dict[str, Any]]]] = {
    "submit-task": submit_task,
    "get-task-status": get_task_status,
    "list-fleet": list_fleet,
    "get-cost-report": get_cost_report,
    "forward-prompt": forward_prompt,
    "stop-agent": stop_agent,
}


def _task_id(args: dict[str, Any]) -> str:
    return _text(args, "taskId", MAX_NAME, required=True) or ""


def _only(scope: FleetScope) -> str | None:
    """The caller's one project, where it has exactly one: where its tasks go by default."""
    return next(iter(scope.projects)) if scope.projects and len(scope.projects) == 1 else None


def _text(args: dict[str, Any], name: str, most: int, *, required: bool = False) -> str | None:
    value = args.get(name)
    if value is None:
        if required:
            raise InvalidInput(name, f"{name}: is required")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > most:
        raise InvalidInput(name, f"{name}: a string of 1-{most} characters")
    return value
