"""The fast lane: the routes every worker calls in a loop, answered ahead of FastAPI.

FastAPI passes a request through its middleware stack (server errors, telemetry, body
limit, exceptions), tests it against its routes one pattern at a time, then resolves the
endpoint's parameters: under a profiler, a large share of a hot request's time. An endpoint
marked `@hot` is matched here first, with its own route's compiled pattern, and called
directly by the application (`app.ShopfloorApp`) before any of that. It stays registered
with FastAPI, which still describes it in the OpenAPI schema and still serves it for a
method the lane does not take, and whenever FastAPI's own telemetry is on.

A hot endpoint takes only its path parameters, `request`, and query parameters typed
`str | None` (the lane reads them as FastAPI would: the last value given, or None). Its
errors go to the application's own exception handlers, so every protocol's error body is
unchanged; an exception no other handler takes goes to the handler for `Exception`, as
Starlette's server-error middleware would send it."""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Endpoint = Callable[..., Awaitable[Any]]
Handler = Callable[[Request, Any], Response | Awaitable[Response]]
E = TypeVar("E", bound=Endpoint)

_HOT: weakref.WeakSet[Endpoint] = weakref.WeakSet()


def hot(endpoint: E) -> E:
    """Mark an endpoint to be served by the fast lane (apply below the route decorator)."""
    _HOT.add(endpoint)
    return endpoint


@dataclass(frozen=True)
class Lane:
    route: APIRoute
    methods: frozenset[str]
    query: tuple[str, ...]  # the endpoint's parameters read from the query string

    def match(self, path: str) -> dict[str, Any] | None:
        found = self.route.path_regex.match(path)
        if found is None:
            return None
        convert = self.route.param_convertors
        return {k: convert[k].convert(v) for k, v in found.groupdict().items()}


def lanes(routers: Iterable[APIRouter]) -> list[Lane]:
    """The hot routes of these routers (included in the app without a prefix)."""
    found = []
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.endpoint in _HOT:
                found.append(Lane(route, frozenset(route.methods or ()), _query_params(route)))
    return found


def _query_params(route: APIRoute) -> tuple[str, ...]:
    path_params = set(route.param_convertors)
    query = []
    for name, param in inspect.signature(route.endpoint).parameters.items():
        if name == "request" or name in path_params:
            continue
        if param.default is not None or param.annotation not in ("str | None", str | None):
            raise TypeError(f"hot endpoint {route.name}: {name} must be `str | None = None`")
        query.append(name)
    return tuple(query)


class FastLane:
    """Finds the hot route an HTTP request is for, and serves it."""

    def __init__(self, lanes: list[Lane], handlers: Mapping[Any, Handler]) -> None:
        self.lanes = lanes
        self.handlers = handlers

    def find(self, scope: Scope) -> tuple[Lane, dict[str, Any]] | None:
        path, method = scope["path"], scope["method"]
        for lane in self.lanes:
            if method in lane.methods and (params := lane.match(path)) is not None:
                return lane, params
        return None

    async def serve(
        self, lane: Lane, params: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        scope["path_params"] = params
        request = Request(scope, receive, send)
        query = request.query_params
        try:
            result = await lane.route.endpoint(
                request=request, **params, **{name: query.get(name) for name in lane.query}
            )
            response = (
                result
                if isinstance(result, Response)
                else JSONResponse(result, status_code=lane.route.status_code or 200)
            )
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            if cls in self.handlers:
                return self.handlers[cls]
        return None
