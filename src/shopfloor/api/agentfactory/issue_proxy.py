"""`POST /api/issue-tracker-proxy`: what an AgentFactory worker without a Linear key calls for
every issue-tracker operation (agentfactory-rensei.md §2.17). shopfloor answers from its own
issue records; replies use the proxy's `{success, data}` / `{success:false, error}` envelope."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shopfloor.api.agentfactory import schemas
from shopfloor.api.agentfactory.auth import authenticate
from shopfloor.api.envelope import ApiError, json_problem
from shopfloor.api.openapi import ErrorBody, errors, json_body, ok
from shopfloor.api.state import services
from shopfloor.api.timefmt import iso
from shopfloor.ids import uuid7_hex
from shopfloor.service.actors import Actor
from shopfloor.service.channel import SessionChannel
from shopfloor.store.records import IssueRecord

router = APIRouter(tags=[schemas.ISSUE_PROXY])

# The proxy's allow-list (AF:packages/linear/src/issue-tracker-proxy.ts).
ALLOWED_METHODS = frozenset(
    {
        "getIssue",
        "isChildIssue",
        "updateIssueStatus",
        "unassignIssue",
        "createComment",
        "updateIssue",
        "createIssue",
        "getIssueComments",
        "getTeamStatuses",
        "createAgentActivity",
        "updateAgentSession",
        "createAgentSessionOnIssue",
        "createIssueRelation",
        "getIssueRelations",
        "deleteIssueRelation",
        "getSubIssues",
        "getSubIssueStatuses",
        "getSubIssueGraph",
        "isParentIssue",
        "listProjectIssues",
        "getProjectRepositoryUrl",
        "getViewer",
        "getTeam",
        "issueLabels",
        "teamMembers",
    }
)

STATE_TYPES = {
    "Icebox": "backlog",
    "Backlog": "backlog",
    "Todo": "unstarted",
    "Started": "started",
    "Finished": "started",
    "Delivered": "started",
    "Rejected": "started",
    "Accepted": "completed",
    "Done": "completed",
    "Canceled": "canceled",
    "Duplicate": "canceled",
}


class ProxyError(Exception):
    def __init__(self, status: int, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable


def _failure(exc: ProxyError) -> JSONResponse:
    body = {
        "success": False,
        "error": {"code": exc.code, "message": exc.message, "retryable": exc.retryable},
    }
    return JSONResponse(body, status_code=exc.status)


def serialized_issue(issue: IssueRecord, base_url: str) -> dict[str, Any]:
    """A SerializedIssue: `labels` is always an array, `state.name` drives the work type."""
    state = issue.state_name or "Backlog"
    team_key = issue.identifier.split("-", 1)[0] if "-" in issue.identifier else "SF"
    return {
        "id": issue.id,
        "identifier": issue.identifier,
        "title": issue.title or issue.identifier,
        "description": issue.description,
        "url": f"{base_url}issues/{issue.identifier}",
        "priority": 0,
        "state": {
            "id": f"state-{state.lower()}",
            "name": state,
            "type": STATE_TYPES.get(state, "unstarted"),
        },
        "labels": [{"id": f"label-{name}", "name": name} for name in issue.labels],
        "assignee": {"id": issue.assignee, "name": issue.assignee} if issue.assignee else None,
        "team": {"id": f"team-{team_key.lower()}", "name": team_key, "key": team_key},
        "parent": {"id": issue.parent_id} if issue.parent_id else None,
        "project": {"id": issue.project, "name": issue.project} if issue.project else None,
        "createdAt": iso(issue.created_at),
        "updatedAt": iso(issue.updated_at),
    }


def _arg(args: list[Any], index: int, name: str) -> str:
    if len(args) <= index or not isinstance(args[index], str) or not args[index].strip():
        raise ProxyError(400, "INVALID_ARGS", f"args[{index}] ({name}) must be a non-empty string")
    value: str = args[index]
    return value


@dataclass(frozen=True)
class Call:
    """One proxied call: the issue records, who calls, its arguments, the server's base URL."""

    channel: SessionChannel
    actor: Actor
    args: list[Any]
    base: str

    async def find_issue(self) -> IssueRecord | None:
        """The issue named by args[0] among the caller's organisation's; an issue of a project
        the caller may not touch does not exist for it."""
        issue = await self.channel.find_issue(self.actor.org_id, _arg(self.args, 0, "issueId"))
        if issue is None or not self.actor.may_touch(issue.org_id, issue.project):
            return None
        return issue

    async def issue(self) -> IssueRecord:
        issue = await self.find_issue()
        if issue is None:
            raise ProxyError(404, "PROXY_ERROR", f"Issue not found: {self.args[0]}")
        return issue


Handler = Callable[[Call], Awaitable[Any]]


async def _get_issue(call: Call) -> Any:
    return serialized_issue(await call.issue(), call.base)


async def _is_child_issue(call: Call) -> Any:
    issue = await call.find_issue()
    return bool(issue and issue.parent_id)


async def _update_issue_status(call: Call) -> Any:
    channel, args, base = call.channel, call.args, call.base
    issue = await call.issue()
    status = _arg(args, 1, "status")
    data = {"issueId": issue.id, "from": issue.state_name, "to": status}
    updated = await channel.change_issue(
        issue, {"state_name": status}, "issue-status", data, call.actor.worker_id
    )
    return serialized_issue(updated, base)


async def _unassign_issue(call: Call) -> Any:
    channel, base = call.channel, call.base
    issue = await call.issue()
    data = {"issueId": issue.id, "previousAssignee": issue.assignee}
    updated = await channel.change_issue(
        issue, {"assignee": None}, "issue-unassign", data, call.actor.worker_id
    )
    return serialized_issue(updated, base)


async def _create_comment(call: Call) -> Any:
    channel, args = call.channel, call.args
    issue = await call.issue()
    text = _arg(args, 1, "body")
    now = iso(channel.clock.now_ms())
    comment = {"id": f"cmt_{uuid7_hex()}", "body": text, "createdAt": now, "updatedAt": now}
    data = {"issueId": issue.id, "commentId": comment["id"], "body": text}
    await channel.note_on_issue(issue, "issue-comment", data, call.actor.worker_id)
    return comment


HANDLERS: dict[str, Handler] = {
    "getIssue": _get_issue,
    "isChildIssue": _is_child_issue,
    "updateIssueStatus": _update_issue_status,
    "unassignIssue": _unassign_issue,
    "createComment": _create_comment,
}


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProxyError(400, "INVALID_JSON", "Request body must be valid JSON") from None
    if not isinstance(body, dict):
        raise ProxyError(400, "INVALID_JSON", "Request body must be a JSON object")
    problem = json_problem(body)
    if problem is not None:
        raise ProxyError(400, "INVALID_ARGS", problem)
    return body


@router.post(
    "/api/issue-tracker-proxy",
    response_model=None,
    responses=ok(schemas.ProxySuccess)
    | errors(schemas.ProxyFailure, 401, 404, 501)
    # A NUL in the URL or an oversized body is refused before the proxy, in the protocol's
    # own envelope.
    | errors(schemas.ProxyFailure | ErrorBody, 400)
    | errors(ErrorBody, 413),
    openapi_extra=json_body(schemas.ProxyRequest),
)
async def issue_tracker_proxy(request: Request) -> JSONResponse:
    try:
        try:
            caller = await authenticate(request)
        except ApiError as exc:
            raise ProxyError(401, "AUTH_ERROR", exc.message) from None
        body = _body(await request.body())
        method = body.get("method")
        if not isinstance(method, str) or method not in ALLOWED_METHODS:
            raise ProxyError(400, "INVALID_METHOD", f"method is not allowed: {method!r}")
        args = body.get("args", [])
        if not isinstance(args, list):
            raise ProxyError(400, "INVALID_ARGS", "args must be an array")
        handler = HANDLERS.get(method)
        if handler is None:
            raise ProxyError(
                501, "METHOD_NOT_FOUND", f"{method} is not supported by shopfloor's issue records"
            )
        channel = services(request).dispatcher.channel
        data = await handler(Call(channel, caller.actor, args, str(request.base_url)))
    except ProxyError as exc:
        return _failure(exc)
    return JSONResponse({"success": True, "data": data})
