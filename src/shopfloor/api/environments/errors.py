"""The error envelope of the environment work API (Qoder and Anthropic paths):
`{"type": "error", "request_id": …, "error": {"type": …, "message": …}}`, plus
`error.details.error_code` where the Anthropic SDK raises a typed exception for it."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from shopfloor.api.envelope import domain_status
from shopfloor.api.environments.wire import ts
from shopfloor.service.errors import (
    AgentNotFound,
    DomainError,
    EnvironmentArchived,
    EnvironmentNotFound,
    HeartbeatPreconditionFailed,
    InvalidInput,
    ManagedSessionNotFound,
    SessionTerminated,
    WorkConflict,
    WorkNotFound,
)

PATH_PREFIXES = ("/api/v1/cloud/", "/v1/")

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    # The Qoder work pages document their 409s as invalid_request_error.
    409: "invalid_request_error",
    412: "precondition_failed_error",
    413: "invalid_request_error",
    500: "api_error",
}


def is_environment_path(path: str) -> bool:
    return path.startswith(PATH_PREFIXES)


def request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "").strip()
    if given and len(given) <= 200:
        return given
    return str(uuid.uuid4())


def error_response(
    request: Request,
    status: int,
    message: str,
    *,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    rid = request_id(request)
    error: dict[str, Any] = {"type": ERROR_TYPES.get(status, "api_error"), "message": message}
    if details is not None:
        error["details"] = details
    out = {"request-id": rid, "x-request-id": rid, **(headers or {})}
    if status == 409:
        # Our conflicts are decided by the item's state; the SDK's automatic retries of a
        # 409 would only repeat the answer.
        out["x-should-retry"] = "false"
    return JSONResponse(
        {"type": "error", "request_id": rid, "error": error}, status_code=status, headers=out
    )


def domain_error_response(request: Request, exc: DomainError) -> JSONResponse:
    if isinstance(exc, EnvironmentNotFound):
        return error_response(
            request, 404, exc.message, details={"error_code": "environment_not_found"}
        )
    if isinstance(exc, EnvironmentArchived):
        return error_response(
            request, 400, exc.message, details={"error_code": "environment_archived"}
        )
    if isinstance(exc, HeartbeatPreconditionFailed):
        current = exc.current
        return error_response(
            request,
            412,
            exc.message,
            details={
                "error_code": "heartbeat_precondition_failed",
                "current_state": {
                    "last_heartbeat": ts(current.last_heartbeat),
                    "lease_extended": False,
                    "state": current.state,
                    "ttl_seconds": current.ttl_seconds,
                },
            },
        )
    if isinstance(exc, WorkNotFound | AgentNotFound | ManagedSessionNotFound):
        return error_response(request, 404, exc.message)
    if isinstance(exc, WorkConflict | SessionTerminated):
        return error_response(request, 409, exc.message)
    if isinstance(exc, InvalidInput):
        return error_response(request, 400, exc.message)
    # Errors of other services (sessions, workers) keep their own meaning.
    return error_response(request, domain_status(exc), exc.message)
