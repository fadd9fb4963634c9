"""Every HTML page the server renders (/docs, /redoc, and any other page a GET without
parameters answers with HTML) names no address outside the server, and what it loads is there.

A plain check of the HTML, without a browser: any absolute URL (`scheme://host` or
`//host`) anywhere in a page, attribute, inline script or style alike, must be for the server's
own host; every script, stylesheet and icon the page links must answer 200 from the server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from shopfloor.clock import ManualClock
from tests.conftest import Backend, make_settings, running_app
from tests.routes import api_routes

BASE = "http://shopfloor"
ABSOLUTE_URL = re.compile(r"(?:\b[a-z][a-z0-9+.-]*:)?//([^/\s\"'<>`()\\]+)", re.IGNORECASE)
URL_ATTRIBUTES = {"src", "href", "action", "formaction", "poster", "data", "spec-url"}


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in URL_ATTRIBUTES:
                self.urls.append(value)
            if value and name == "srcset":
                self.urls.extend(part.split()[0] for part in value.split(",") if part.strip())


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    async with running_app(make_settings(backend, tmp_path), ManualClock()) as client:
        yield client


async def html_pages(api: httpx.AsyncClient) -> dict[str, str]:
    """/docs and /redoc, and every other page a parameterless GET answers with HTML."""
    paths = {"/docs", "/redoc"}
    for route in api_routes(api.app):  # type: ignore[attr-defined]
        if "GET" in route.methods and "{" not in route.path:
            paths.add(route.path)
    pages = {}
    for path in sorted(paths):
        reply = await api.get(path)
        if reply.headers.get("content-type", "").startswith("text/html"):
            assert reply.status_code == 200, (path, reply.text)
            pages[path] = reply.text
    assert {"/docs", "/redoc"} <= set(pages)
    return pages


def outside_hosts(page: str) -> list[str]:
    own = urlsplit(BASE).netloc
    return [host for host in ABSOLUTE_URL.findall(page) if host.lower() != own]


async def test_no_page_names_another_host(api: httpx.AsyncClient) -> None:
    for path, page in (await html_pages(api)).items():
        assert outside_hosts(page) == [], path


async def test_what_the_pages_load_is_served_by_the_server(api: httpx.AsyncClient) -> None:
    for path, page in (await html_pages(api)).items():
        links = Links()
        links.feed(page)
        assert links.urls, path
        for link in links.urls:
            url = urljoin(BASE + path, link)
            assert urlsplit(url).netloc == urlsplit(BASE).netloc, (path, link)
            assert (await api.get(url)).status_code == 200, (path, link)


def test_the_check_sees_absolute_urls() -> None:
    """The pattern finds what a CDN-backed page carries (FastAPI's own defaults)."""
    page = (
        '<link href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">'
        "<script src='//unpkg.com/redoc'></script><style>a{background:url(http://x.example/i)}"
        '</style><a href="/docs-assets/favicon.png">'
    )
    assert outside_hosts(page) == ["cdn.jsdelivr.net", "unpkg.com", "x.example"]
    assert outside_hosts(f'<a href="{BASE}/openapi.json">') == []
