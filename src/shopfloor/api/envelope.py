"""The `{"error": <reason phrase>, "message": …}` error body shared by the AgentFactory
protocol and shopfloor's own operator API, and the helpers that read JSON bodies into it."""

from __future__ import annotations

import json
import math
from http import HTTPStatus
from typing import Any, TypeGuard

from fastapi import Request
from fastapi.responses import JSONResponse

from shopfloor.service.errors import (
    A2aAgentNotFound,
    Conflict,
    DomainError,
    EnvironmentNotFound,
    InvalidInput,
    InvalidTransition,
    NotOwner,
    NotPermitted,
    OrgNotFound,
    ResourceNotFound,
    SessionNotFound,
    WorkerNotFound,
)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": HTTPStatus(status).phrase, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


def domain_status(exc: DomainError) -> int:
    if isinstance(
        exc,
        WorkerNotFound
        | SessionNotFound
        | EnvironmentNotFound
        | OrgNotFound
        | ResourceNotFound
        | A2aAgentNotFound,
    ):
        return 404
    if isinstance(exc, NotOwner | NotPermitted):
        return 403
    if isinstance(exc, InvalidTransition | Conflict):
        return 409
    if isinstance(exc, InvalidInput):
        return 400
    return 400


NUL_REFUSED = "Request body must not contain the NUL character (\\u0000)"
MAX_JSON_DEPTH = 64
TOO_DEEP = f"Request body is nested deeper than {MAX_JSON_DEPTH} levels"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


async def json_object(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    return parse_json_object(await request.body(), empty_ok=empty_ok)


def parse_json_object(
    raw: bytes, *, empty_ok: bool = False, nul_ok: bool = False
) -> dict[str, Any]:
    """Parse a body that must be a JSON object, and check it as `json_problem` does. NUL
    characters are refused unless the caller stores the body as raw JSON text: PostgreSQL can
    hold NUL in neither text nor JSONB."""
    if not raw.strip():
        if empty_ok:
            return {}
        raise ApiError(400, "Request body must be a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "Invalid JSON body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    problem = json_problem(body, nul_ok=nul_ok)
    if problem is not None:
        raise ApiError(400, problem)
    return body


def json_problem(value: Any, *, nul_ok: bool = False) -> str | None:
    """What makes a parsed JSON value unfit to use, naming the field, or None: nesting deeper
    than MAX_JSON_DEPTH, an integer outside int64 (what the databases store), a number that
    is not finite (NaN, Infinity, or beyond a float's range), a lone surrogate in a string or
    key, or (unless `nul_ok`) a NUL character in a string or key. Walked without recursion,
    so no depth of input can exhaust the stack; a field's path is spelled out only for the
    message."""
    stack: list[tuple[Any, _Path, int]] = [(value, None, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= MAX_JSON_DEPTH:
                return TOO_DEEP
            for key, child in item.items():
                if not nul_ok and "\x00" in key:
                    return NUL_REFUSED
                if not key.isascii() and _lone_surrogate(key):
                    return f"{_spell(path)} has a key with a lone surrogate ({SURROGATES})"
                stack.append((child, (path, key), depth + 1))
        elif isinstance(item, list):
            if depth >= MAX_JSON_DEPTH:
                return TOO_DEEP
            stack.extend((child, (path, i), depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            if not nul_ok and "\x00" in item:
                return NUL_REFUSED
            if not item.isascii() and _lone_surrogate(item):
                return f"{_spell(path)} must not contain a lone surrogate ({SURROGATES})"
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return f"{_spell(path)} must be an integer between {INT64_MIN} and {INT64_MAX}"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{_spell(path)} must be a finite number"
    return None


# JSON may escape half of a UTF-16 pair alone (`"\ud800"`); no UTF-8 text, and so no
# database, can hold it.
SURROGATES = "an unpaired \\ud800-\\udfff escape"


def _lone_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


# A field's path as a chain of (parent, key or index), None at the body itself.
_Path = tuple["_Path", str | int] | None


def _spell(path: _Path) -> str:
    parts: list[str] = []
    while path is not None:
        path, step = path
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "".join(reversed(parts)).lstrip(".") or "body"


def has_nul(value: Any) -> bool:
    """Whether a NUL character is in any string or key of a JSON value (walked iteratively)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    return value


def req_str(body: dict[str, Any], name: str, message: str | None = None) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, message or f"{name} is required")
    return value


def is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def opt_number(body: dict[str, Any], name: str, *, minimum: float = 0) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not is_number(value) or value < minimum:
        raise ApiError(400, f"{name} must be a non-negative number")
    return float(value)


def opt_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not is_number(value) or value < 0 or int(value) != value:
        raise ApiError(400, f"{name} must be a non-negative integer")
    return int(value)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
