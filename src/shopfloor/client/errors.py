"""Errors of the shopfloor clients, and how a reply's message is found in each envelope."""

from __future__ import annotations

import httpx


class ApiError(Exception):
    """A reply with a 4xx or 5xx status; `message` is what the server said is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class WorkerNotFound(ApiError):
    """404 `Worker not found`: the server no longer knows this worker (declared dead,
    deregistered); the AgentFactory worker registers again."""


class NotOwner(ApiError):
    """403 `Session is owned by another worker`: the session's lease moved on."""


class Unreachable(Exception):
    """The server did not answer (connection refused, reset, timed out, or kept answering
    5xx) in the attempts the call was allowed."""


def error_message(response: httpx.Response) -> str:
    """The message of an error reply in any of shopfloor's envelopes: `{"message"}` (operator
    and AgentFactory), `{"error": {"message"}}` (environment work API), `{"detail"}`
    (Veryfront); else the body as text."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    if isinstance(body, dict):
        nested = body.get("error")
        if isinstance(nested, dict) and isinstance(nested.get("message"), str):
            return str(nested["message"])
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text


def api_error(response: httpx.Response) -> ApiError:
    message = error_message(response)
    if response.status_code == 404 and "Worker not found" in response.text:
        return WorkerNotFound(404, message)
    if response.status_code == 403 and "owned by another worker" in response.text:
        return NotOwner(403, message)
    return ApiError(response.status_code, message)
