"""/docs and /redoc render in a real browser that cannot reach the internet.

Debian's Chromium (/usr/bin/chromium, installed by scripts/test.sh) is driven by Playwright
against a real `shopfloor serve` process. Every request for another origin is aborted, as a
firewall would, and recorded: the pages must render their operation lists all the same, and no
request may have left the server's origin. In CI a missing browser fails the test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, Request, Response, Route, async_playwright, expect

from tests.processes.server import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RENDER_TIMEOUT_MS = 60_000  # a loaded 2-core machine parses the bundles slowly
# An operation's title (its summary), shown by both pages.
OPERATION_TITLE = "Create a self-hosted environment"


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (scripts/test.sh installs the chromium package)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Traffic:
    """What the page asked for: requests for the server's origin, those for anywhere else
    (aborted), and local ones that failed or got an error status."""

    origin: str
    local: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    def is_local(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == self.origin

    def paths(self) -> set[str]:
        return {urlsplit(u).path for u in self.local}


@asynccontextmanager
async def offline_page(server: ServerProcess) -> AsyncIterator[tuple[Page, Traffic]]:
    require_chromium()
    traffic = Traffic(origin=server.url)

    async def firewall(route: Route) -> None:
        url = route.request.url
        if traffic.is_local(url):
            traffic.local.append(url)
            await route.continue_()
        else:
            traffic.outside.append(url)
            await route.abort("internetdisconnected")

    def failed(request: Request) -> None:
        if traffic.is_local(request.url):
            traffic.broken.append(f"{request.url}: {request.failure}")

    def answered(response: Response) -> None:
        if response.status >= 400:
            traffic.broken.append(f"{response.url}: {response.status}")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            context = await browser.new_context()
            await context.route("**/*", firewall)
            page = await context.new_page()
            page.on("requestfailed", failed)
            page.on("response", answered)
            page.on(
                "websocket",
                lambda ws: None if traffic.is_local(ws.url) else traffic.outside.append(ws.url),
            )
            yield page, traffic
        finally:
            await browser.close()


async def test_swagger_ui_renders_the_operation_list_offline(docs_server: ServerProcess) -> None:
    async with offline_page(docs_server) as (page, traffic):
        await page.goto(docs_server.url + "/docs")
        title = page.locator(".opblock-summary-description", has_text=OPERATION_TITLE)
        await expect(title.first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
        await expect(page.locator(".opblock-tag", has_text="Operator API").first).to_be_visible()
        assert await page.locator(".opblock").count() >= 50  # every operation is listed
        await page.wait_for_load_state("networkidle")

    assert traffic.outside == [], "requests that left the server's origin"
    assert traffic.broken == []
    # Script, stylesheet and favicon came from the server, and so did the document.
    assert {
        "/docs",
        "/openapi.json",
        "/docs-assets/swagger-ui-bundle.js",
        "/docs-assets/swagger-ui.css",
        "/docs-assets/favicon.png",
    } <= traffic.paths()


async def test_redoc_renders_offline(docs_server: ServerProcess) -> None:
    async with offline_page(docs_server) as (page, traffic):
        await page.goto(docs_server.url + "/redoc")
        heading = page.get_by_role("heading", name=OPERATION_TITLE)
        await expect(heading.first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
        await expect(page.get_by_role("menuitem", name="Operator API").first).to_be_visible()
        await page.wait_for_load_state("networkidle")

    assert traffic.outside == [], "requests that left the server's origin"
    assert traffic.broken == []
    assert {"/redoc", "/openapi.json", "/docs-assets/redoc.standalone.js"} <= traffic.paths()
