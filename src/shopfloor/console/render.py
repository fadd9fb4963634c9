"""Pages from the templates in console/templates (Jinja2, autoescaped), sent with a
Content-Security-Policy that lets the browser load, run and connect to nothing but the server
itself, and no inline script at all."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from shopfloor.api.timefmt import iso

STATIC = "/console/static"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # "no-referrer" makes a form post say Origin: null
    "cache-control": "no-store",
}


def template_dir() -> str:
    return str(files("shopfloor.console").joinpath("templates"))


def static_dir() -> str:
    return str(files("shopfloor.console").joinpath("static"))


def age(ms: int | None, now_ms: int) -> str:
    """A duration for people: 42s, 7m, 3h, 2d."""
    if ms is None:
        return ""
    seconds = max(0, now_ms - ms) // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_env = Environment(
    loader=FileSystemLoader(template_dir()),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals["static"] = STATIC
_env.filters["iso"] = iso


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)
