"""The `{"error": <reason phrase>, "message": …}` error body shared by the AgentFactory
protocol and shopfloor's own operator API, and the helpers that read JSON bodies into it."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, TypeGuard

from fastapi import Request
from fastapi.responses import JSONResponse

from shopfloor.service.errors import (
    Conflict,
    DomainError,
    EnvironmentNotFound,
    InvalidInput,
    InvalidTransition,
    NotOwner,
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
    if isinstance(exc, WorkerNotFound | SessionNotFound | EnvironmentNotFound):
        return 404
    if isinstance(exc, NotOwner):
        return 403
    if isinstance(exc, InvalidTransition | Conflict):
        return 409
    if isinstance(exc, InvalidInput):
        return 400
    return 400


NUL_REFUSED = "Request body must not contain the NUL character (\\u0000)"


async def json_object(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    return parse_json_object(await request.body(), empty_ok=empty_ok)


def parse_json_object(
    raw: bytes, *, empty_ok: bool = False, nul_ok: bool = False
) -> dict[str, Any]:
    """Parse a body that must be a JSON object. NUL characters are refused unless the caller
    stores the body as raw JSON text: PostgreSQL can hold NUL in neither text nor JSONB."""
    if not raw.strip():
        if empty_ok:
            return {}
        raise ApiError(400, "Request body must be a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Invalid JSON body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    if not nul_ok and has_nul(body):
        raise ApiError(400, NUL_REFUSED)
    return body


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
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
