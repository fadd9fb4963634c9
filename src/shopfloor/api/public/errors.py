"""The public and daemon routes' error body, `{"error": "<what is wrong>"}` (the platform-wide
convention of rensei-platform.md: `{"error": "Session not found"}`); a message about bad input
names the field."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shopfloor.api.envelope import domain_status
from shopfloor.api.openapi import errors
from shopfloor.service.errors import DomainError, SessionNotFound

PREFIXES = ("/api/public/", "/api/daemon/", "/v1/daemon/", "/api/cli/")
SESSION_NOT_FOUND = "Session not found"


class PlatformError(BaseModel):
    """The error body of the public Sessions API and the daemon credential routes."""

    error: str = Field(description="What is wrong; names the field for bad input")


def platform_errors(*codes: int) -> dict[int | str, Any]:
    return errors(PlatformError, *codes)


def is_platform_path(path: str) -> bool:
    return path.startswith(PREFIXES)


def platform_error(status: int, message: str, headers: dict[str, str] | None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def platform_domain_error(exc: DomainError) -> JSONResponse:
    if isinstance(exc, SessionNotFound):
        return platform_error(404, SESSION_NOT_FOUND, None)
    return platform_error(domain_status(exc), exc.message, None)
