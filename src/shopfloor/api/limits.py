"""Request body limits, enforced before any route reads a byte of its body.

Every HTTP request passes through `BodyLimits.guard` in the application (`app.ShopfloorApp`),
ahead of authentication, routing and parsing: a request whose `Content-Length` is over its
route's limit is refused at once without reading the body, and one that streams more than
the limit (chunked, or lying about its length) fails at the first byte past it, so no request
holds more than its limit in memory. The limit is `SHOPFLOOR_MAX_BODY_BYTES` (1 MiB, the
reference AgentFactory server's own limit) unless a route declares its own with `@body_limit`
(Veryfront's event append takes 10 MiB, as that protocol allows)."""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException
from fastapi.routing import APIRoute
from starlette.types import Message, Receive, Scope

MIB = 1024 * 1024
DEFAULT_MAX_BODY_BYTES = MIB

Endpoint = Callable[..., Awaitable[Any]]
E = TypeVar("E", bound=Endpoint)


@dataclass(frozen=True)
class BodyLimit:
    max_bytes: int
    status: int = 413
    message: str = ""

    @property
    def refusal(self) -> str:
        return self.message or f"Request body is larger than {self.max_bytes} bytes"


_DECLARED: weakref.WeakKeyDictionary[Endpoint, BodyLimit] = weakref.WeakKeyDictionary()


def body_limit(max_bytes: int, *, status: int = 413, message: str = "") -> Callable[[E], E]:
    """Give a route a body limit of its own (apply below the route decorator). `status` and
    `message` are for a protocol that names its own refusal."""

    def mark(endpoint: E) -> E:
        _DECLARED[endpoint] = BodyLimit(max_bytes, status, message)
        return endpoint

    return mark


class BodyTooLarge(HTTPException):
    """Raised while a body is read, at the first byte past its limit. An HTTPException, so
    FastAPI's own body reading passes it on instead of turning it into a parse error."""

    def __init__(self, limit: BodyLimit) -> None:
        super().__init__(limit.status, limit.refusal, headers={"connection": "close"})
        self.limit = limit


class BodyLimits:
    """The limit of each request, by the route it is for."""

    def __init__(self, routers: Iterable[APIRouter], default_bytes: int) -> None:
        self.default = BodyLimit(default_bytes)
        self.declared: list[tuple[APIRoute, BodyLimit]] = [
            (route, _DECLARED[route.endpoint])
            for router in routers
            for route in router.routes
            if isinstance(route, APIRoute) and route.endpoint in _DECLARED
        ]

    def of(self, scope: Scope) -> BodyLimit:
        path, method = scope["path"], scope["method"]
        for route, limit in self.declared:
            if method in (route.methods or ()) and route.path_regex.match(path):
                return limit
        return self.default

    def guard(self, scope: Scope, receive: Receive) -> tuple[BodyLimit | None, Receive]:
        """The limit the request's declared length already breaks (refuse it unread), or
        None and a `receive` that fails once the body streams past the limit."""
        limit = self.of(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit.max_bytes:
            return limit, receive
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit.max_bytes:
                    raise BodyTooLarge(limit)
            return message

        return None, counted


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # The HTTP server has refused a malformed length before the app sees it.
            return int(value) if value.isdigit() else None
    return None
