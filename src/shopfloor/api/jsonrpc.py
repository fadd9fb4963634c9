"""JSON-RPC 2.0 over one HTTP POST, as the MCP endpoint and the A2A endpoint speak it: a single
request or a batch array; notifications get no reply (a body of notifications only: HTTP 202,
no body); each error in the JSON-RPC envelope, with the standard codes. A body that is not
JSON, or no JSON-RPC message at all, is a 400 carrying that envelope; errors of a method are
HTTP 200, as JSON-RPC over HTTP has them. No handler's failure is ever a 500."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse, Response

from shopfloor.api.envelope import json_problem

log = logging.getLogger("shopfloor.jsonrpc")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
MAX_BATCH = 100

RequestId = str | int | None


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


@dataclass(frozen=True)
class Call:
    id: RequestId
    method: str
    params: dict[str, Any]
    notification: bool


Handler = Callable[[Call], Awaitable[Any]]


def error_body(request_id: RequestId, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def error_reply(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(None, code, message), status_code=status, headers=headers)


async def serve(raw: bytes, handle: Handler) -> Response:
    """Answer a POSTed body: one message or a batch."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return error_reply(400, PARSE_ERROR, "Parse error: the body is not JSON")
    problem = json_problem(body)
    if problem is not None:
        return error_reply(400, INVALID_REQUEST, f"Invalid Request: {problem}")
    if isinstance(body, list):
        if not body or len(body) > MAX_BATCH:
            message = f"Invalid Request: a batch holds 1 to {MAX_BATCH} messages"
            return error_reply(400, INVALID_REQUEST, message)
        replies = [r for r in [await _answer(m, handle) for m in body] if r is not None]
        return JSONResponse(replies) if replies else Response(status_code=202)
    if not _is_message(body):
        return JSONResponse(await _answer(body, handle), status_code=400)
    reply = await _answer(body, handle)
    return Response(status_code=202) if reply is None else JSONResponse(reply)


def _is_message(body: Any) -> bool:
    return isinstance(body, dict) and body.get("jsonrpc") == "2.0" and "method" in body


async def _answer(message: Any, handle: Handler) -> dict[str, Any] | None:
    """The reply to one message, or None for a notification."""
    if not isinstance(message, dict):
        return error_body(None, INVALID_REQUEST, "Invalid Request: a message is a JSON object")
    request_id = message.get("id")
    if not _valid_id(request_id):
        return error_body(None, INVALID_REQUEST, "Invalid Request: id must be a string or integer")
    if message.get("jsonrpc") != "2.0":
        return error_body(request_id, INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"')
    method = message.get("method")
    if not isinstance(method, str):
        if "result" in message or "error" in message:
            return None  # a reply to nothing we asked: ignored
        return error_body(request_id, INVALID_REQUEST, "Invalid Request: method must be a string")
    notification = "id" not in message
    params = message.get("params", {})
    if not isinstance(params, dict):
        if notification:
            return None
        return error_body(request_id, INVALID_PARAMS, "Invalid params: params must be an object")
    try:
        result = await handle(Call(request_id, method, params, notification))
    except RpcError as exc:
        return None if notification else error_body(request_id, exc.code, exc.message, exc.data)
    except Exception:
        log.exception("JSON-RPC method %s failed", method)
        return None if notification else error_body(request_id, INTERNAL_ERROR, "Internal error")
    return None if notification else {"jsonrpc": "2.0", "id": request_id, "result": result}


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or (type(value) is int)


def require(params: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """A required parameter of the given type, or the -32602 naming it."""
    value = params.get(name)
    if value is None:
        raise RpcError(INVALID_PARAMS, f"Invalid params: {name} is required")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise RpcError(INVALID_PARAMS, f"Invalid params: {name} has the wrong type")
    return value
