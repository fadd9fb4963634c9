"""The interactive API reference, `/docs` (Swagger UI) and `/redoc` (ReDoc), served entirely by
the server itself: their scripts, stylesheet and favicon come from the `fastapi-offline`
package installed with shopfloor and are served under ASSETS, so the pages work on a machine
with no internet access. No page here names an address outside the server, and each is sent
with a Content-Security-Policy that lets the browser load nothing from anywhere else (ReDoc's
bundle has one image of its own on a public host, its side menu's logo, which it shows only
if it loads)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
# Swagger UI's default validator badge loads an image from a public validator service.
SWAGGER_UI_PARAMETERS: dict[str, Any] = {"validatorUrl": None}
# Both pages run an inline script or inline styles; ReDoc's search runs in a blob: worker.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'self'",
        "form-action 'self'",
    )
)


def assets_directory() -> str:
    """The folder of Swagger UI's and ReDoc's files inside the installed fastapi-offline."""
    return str(files("fastapi_offline").joinpath("static"))


def install_docs(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets (the app is created with docs_url=None and
    redoc_url=None, so FastAPI's own pages, which load them from a CDN, are off)."""
    app.mount(ASSETS, StaticFiles(directory=assets_directory()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API reference",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        return _confined(page)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API reference",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        return _confined(page)


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["content-security-policy"] = CONTENT_SECURITY_POLICY
    return page
