"""What the agent loop needs of a model: one Messages API call. The client that makes it over
HTTP is outbound/messages.py; tests point it at a stand-in server by URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# session.error types (the wire's error objects) for what can go wrong with a model call.
OVERLOADED = "model_overloaded_error"
RATE_LIMITED = "model_rate_limited_error"
REQUEST_FAILED = "model_request_failed_error"


@dataclass(frozen=True)
class ModelRequest:
    model: str
    max_tokens: int
    messages: list[dict[str, Any]]
    system: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ModelReply:
    """A reply that was checked: content blocks as they came (each a dict with a `type`;
    text, tool_use and thinking blocks with their fields), a stop reason, token counts."""

    content: list[dict[str, Any]]
    stop_reason: str
    usage: dict[str, int]


class ModelError(Exception):
    """The call failed, timed out, or answered something that is not a message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ModelClient(Protocol):
    async def create(self, request: ModelRequest) -> ModelReply:
        """One model call; raises ModelError for every failure."""
        ...

    async def close(self) -> None: ...
