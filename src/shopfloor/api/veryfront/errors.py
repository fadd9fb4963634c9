"""The Veryfront error body, `{"detail": …, "error": <reason phrase>}`, and which paths use it.

The npm client surfaces the body text as the error message, and its durable-run helpers match
some `detail` strings exactly (see APPEND_* below); those strings must not change."""

from __future__ import annotations

from http import HTTPStatus

from fastapi.responses import JSONResponse

from shopfloor.service.errors import (
    Conflict,
    ConversationNotFound,
    CursorMismatch,
    DomainError,
    InputRequestNotFound,
    InvalidInput,
    InvalidTransition,
    LeaseNotHeld,
    NotOwner,
    RunNotFound,
    RunTerminal,
    RunWaitingForTool,
    SessionNotFound,
    WorkerNotFound,
)

PREFIXES = ("/agent-workers", "/runs", "/conversations", "/projects")

# Matched verbatim by veryfront/agent (conversation/durable-append-errors.js).
APPEND_CURSOR_MISMATCH = "External run event cursor mismatch"
APPEND_TERMINAL = "Cannot append external events to a terminal run"
APPEND_WAITING_FOR_TOOL = "Cannot append external events while the run is waiting for a tool result"
EVENT_CURSOR_MISMATCH = "Run event cursor mismatch"


def is_veryfront_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PREFIXES)


def veryfront_error(
    status: int, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"detail": detail, "error": HTTPStatus(status).phrase}
    return JSONResponse(body, status_code=status, headers=headers)


def veryfront_domain_error(exc: DomainError) -> JSONResponse:
    if isinstance(exc, CursorMismatch):
        external = exc.which == "latest_external_event_sequence"
        return veryfront_error(400, APPEND_CURSOR_MISMATCH if external else EVENT_CURSOR_MISMATCH)
    if isinstance(exc, RunTerminal):
        return veryfront_error(400, APPEND_TERMINAL)
    if isinstance(exc, RunWaitingForTool):
        return veryfront_error(400, APPEND_WAITING_FOR_TOOL)
    not_found = RunNotFound | WorkerNotFound | SessionNotFound
    if isinstance(exc, not_found | ConversationNotFound | InputRequestNotFound):
        return veryfront_error(404, exc.message)
    if isinstance(exc, LeaseNotHeld | Conflict | InvalidTransition | NotOwner):
        return veryfront_error(409, exc.message)
    if isinstance(exc, InvalidInput):
        return veryfront_error(400, exc.message)
    return veryfront_error(400, exc.message)
