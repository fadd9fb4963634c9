"""A2A dispatch (rensei-platform.md §4.4): JSON-RPC 2.0 at `POST /api/a2a`, the endpoint the
agent card names. `message/send` queues a session for the organisation's workers and answers
its task; `tasks/get` follows it; `tasks/cancel` stops it; `message/stream` and
`tasks/resubscribe` answer the task and then its status updates as server-sent events.
Auth: an organisation's key (or an M2M access token, or the admin key) as a Bearer token;
without one, HTTP 401 with the JSON-RPC error -32000. A task of another organisation, or of
a project the key does not reach, does not exist for it (-32001).

Left out of the OpenAPI document, as the MCP endpoint: one POST carries every method, and
notifications are answered 202 with no body."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from shopfloor.api import jsonrpc
from shopfloor.api.a2a import stream
from shopfloor.api.a2a.tasks import CONTEXT_KEY, MESSAGE_KEY, task_view
from shopfloor.api.envelope import ApiError
from shopfloor.api.jsonrpc import INVALID_PARAMS, Call, RpcError
from shopfloor.api.operator.auth import principal
from shopfloor.api.state import Services, services
from shopfloor.service.actors import Principal
from shopfloor.service.dispatch import WORK_TYPES, NewSession, af_queue
from shopfloor.service.errors import Conflict
from shopfloor.store.records import SessionRecord
from shopfloor.store.tenancy_records import DEFAULT_ORG

router = APIRouter()

UNAUTHORIZED = -32000
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
MAX_TEXT_CHARS = 100_000


@router.post("/api/a2a", include_in_schema=False)
async def a2a_endpoint(request: Request) -> Response:
    try:
        who = await principal(request)
    except ApiError:
        return jsonrpc.error_reply(401, UNAUTHORIZED, "Unauthorized")
    svc = services(request)

    raw = await request.body()
    streamed = stream.streamed_call(raw)
    if streamed is not None:
        return await _stream(request, svc, who, streamed)

    async def handle(call: Call) -> Any:
        if call.method == "message/send":
            return task_view(await _send(svc, who, call.params))
        if call.method == "tasks/get":
            return task_view(await _task(svc, who, call.params, "sessions:read"))
        if call.method == "tasks/cancel":
            return await _cancel(svc, who, call.params)
        raise RpcError(jsonrpc.METHOD_NOT_FOUND, f"Method not found: {call.method}")

    return await jsonrpc.serve(raw, handle)


async def _stream(request: Request, svc: Services, who: Principal, call: Call) -> Response:
    """`message/stream` and `tasks/resubscribe`: the task, then its status updates, as
    server-sent events; an error before the stream starts is a plain JSON-RPC reply."""
    try:
        if call.method == "message/stream":
            session = await _send(svc, who, call.params)
        else:
            session = await _task(svc, who, call.params, "sessions:read")
    except RpcError as exc:
        return JSONResponse(jsonrpc.error_body(call.id, exc.code, exc.message))
    events = stream.task_events(request, svc.dispatcher.store, call.id, session)
    return StreamingResponse(events, media_type="text/event-stream", headers=stream.HEADERS)


async def _send(svc: Services, who: Principal, params: dict[str, Any]) -> SessionRecord:
    message = jsonrpc.require(params, "message", dict)
    text = _text_of(message)
    meta = {**_object(params, "metadata"), **_object(message, "metadata")}
    task_id = message.get("taskId")
    if task_id is not None:
        session = await _task(svc, who, {"id": task_id}, "sessions:write")
        if session.is_terminal:
            raise RpcError(INVALID_PARAMS, f"Invalid params: task {session.id} has ended")
        await svc.dispatcher.channel.send(session.id, "directive", text, user_id=who.identity)
        return await svc.dispatcher.get_session(session.id)
    project = _optional_str(meta, "projectName")
    work_type = _optional_str(meta, "workType") or _optional_str(meta, "skill")
    if work_type is not None and work_type not in WORK_TYPES:
        raise RpcError(
            INVALID_PARAMS, "Invalid params: metadata.workType must be one of the skills"
        )
    org_id = who.org_id or DEFAULT_ORG
    _check(who, "sessions:write", org_id, project)
    session = await svc.dispatcher.create_session(
        NewSession(
            queue=af_queue(org_id),
            title=text.strip().splitlines()[0][:200] if text.strip() else None,
            prompt=text,
            work_type=work_type,
            project=project,
            extra=_a2a_ids(message),
            org_id=org_id,
        )
    )
    return session


async def _cancel(svc: Services, who: Principal, params: dict[str, Any]) -> dict[str, Any]:
    session = await _task(svc, who, params, "sessions:write")
    try:
        stopped = await svc.dispatcher.channel.stop(
            session.id, "canceled by an A2A client", user_id=who.identity
        )
    except Conflict:
        raise RpcError(TASK_NOT_CANCELABLE, "Task cannot be canceled") from None
    return task_view(stopped)


async def _task(svc: Services, who: Principal, params: dict[str, Any], scope: str) -> SessionRecord:
    task_id = params.get("id", params.get("taskId"))
    if not isinstance(task_id, str) or not task_id:
        raise RpcError(INVALID_PARAMS, "Invalid params: id is required")
    session = await svc.dispatcher.store.get_session(task_id)
    if session is None or not who.may_touch(session.org_id, session.project):
        raise RpcError(TASK_NOT_FOUND, "Task not found")
    _check(who, scope, session.org_id, session.project)
    return session


def _check(who: Principal, scope: str, org_id: str, project: str | None) -> None:
    if not who.may(scope):
        raise RpcError(UNAUTHORIZED, f"Forbidden: this key lacks the {scope} scope")
    if not who.may_touch(org_id, project):
        raise RpcError(UNAUTHORIZED, "Forbidden: this key may not queue work in that project")


def _text_of(message: dict[str, Any]) -> str:
    parts = message.get("parts")
    if not isinstance(parts, list):
        raise RpcError(INVALID_PARAMS, "Invalid params: message.parts is required")
    texts = [
        p["text"]
        for p in parts
        if isinstance(p, dict)
        and p.get("kind", "text") == "text"
        and isinstance(p.get("text"), str)
    ]
    text = "\n".join(texts)
    if not text.strip():
        raise RpcError(INVALID_PARAMS, "Invalid params: message.parts must hold a text part")
    if len(text) > MAX_TEXT_CHARS:
        raise RpcError(INVALID_PARAMS, f"Invalid params: message text over {MAX_TEXT_CHARS}")
    return text


def _is_text(part: Any) -> bool:
    return (
        isinstance(part, dict)
        and part.get("kind", "text") == "text"
        and isinstance(part.get("text"), str)
    )


def _a2a_ids(message: dict[str, Any]) -> dict[str, Any]:
    ids = {CONTEXT_KEY: message.get("contextId"), MESSAGE_KEY: message.get("messageId")}
    return {k: v[:200] for k, v in ids.items() if isinstance(v, str) and v}


def _object(container: dict[str, Any], name: str) -> dict[str, Any]:
    value = container.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RpcError(INVALID_PARAMS, f"Invalid params: {name} must be an object")
    return value


def _optional_str(meta: dict[str, Any], name: str) -> str | None:
    value = meta.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 200:
        raise RpcError(INVALID_PARAMS, f"Invalid params: metadata.{name} must be a short string")
    return value
