"""The app's routes, flattened: FastAPI from 0.16x keeps an included router as one entry of
`app.routes` (its routes are matched through it), so a test that looks at every route walks
into them. shopfloor includes its routers without a prefix, so each route's path is final."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute


def api_routes(app: FastAPI) -> list[APIRoute]:
    found: list[APIRoute] = []
    pending = list(app.routes)
    while pending:
        route = pending.pop(0)
        router = getattr(route, "original_router", None)
        if router is not None:
            pending[:0] = router.routes
        elif isinstance(route, APIRoute):
            found.append(route)
    return found
