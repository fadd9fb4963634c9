"""The console's routes and static files, installed on the app (outside the OpenAPI
document: they are pages, not API)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from shopfloor.console import actions, fleet_pages, pages, stream
from shopfloor.console.render import STATIC, static_dir


def install_console(app: FastAPI) -> None:
    for module in (pages, fleet_pages, stream, actions):
        app.include_router(module.router, include_in_schema=False)
    app.mount(STATIC, StaticFiles(directory=static_dir()), name="console-static")
