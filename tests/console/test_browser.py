"""The console in a real browser: Debian's Chromium, driven by Playwright, against a real
`shopfloor serve` process, cut off from every other origin (as tests/docs does). Sign in, see
a worker appear when it registers, see a queued session get claimed, open it and see a new
activity arrive without a reload, stop it from the page. A screenshot of each page is saved
(to SHOPFLOOR_TEST_ARTEFACTS if set, else the test's tmp folder). In CI a missing browser
fails the test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.agentfactory.helpers import ADMIN, WORKER
from tests.conftest import ADMIN_KEY, Backend
from tests.docs.test_offline_browser import offline_page
from tests.processes.server import ServerProcess, server_env, start_server, stop_cleanly

pytestmark = pytest.mark.slow
SEEN_TIMEOUT_MS = 30_000  # the overview reloads every 3 s; a loaded machine is slow


@pytest.fixture
def console_server(tmp_path: Path) -> Iterator[ServerProcess]:
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    env = server_env(backend, tmp_path / "data", SHOPFLOOR_POLL_HOLD_MS="0")
    server = start_server(env, tmp_path / "server.log")
    yield server
    stop_cleanly(server)


def artefacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SHOPFLOOR_TEST_ARTEFACTS") or tmp_path) / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def snap(page: Page, folder: Path, name: str) -> None:
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def test_sign_in_watch_a_session_live_and_stop_it(
    console_server: ServerProcess, tmp_path: Path
) -> None:
    url = console_server.url
    shots = artefacts(tmp_path)
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as http,
        offline_page(console_server) as (page, traffic),
    ):
        await page.goto(url + "/")
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await snap(page, shots, "login")
        await page.get_by_label("Key").fill(ADMIN_KEY)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        assert not any(
            c["name"] == "shopfloor_console" and not c["httpOnly"]
            for c in await page.context.cookies()
        )

        # A worker registers: the overview shows it at its next refresh.
        reply = await http.post(
            "/api/workers/register",
            json={"hostname": "browser-host", "capacity": 2, "version": "9.9.9"},
            headers=WORKER,
        )
        worker = reply.json()["workerId"]
        await expect(page.locator(f'tr[data-worker="{worker}"]')).to_be_visible(
            timeout=SEEN_TIMEOUT_MS
        )

        # A session is queued, then claimed and started by the worker.
        created = await http.post(
            "/api/v1/sessions",
            json={"title": "Fix the login page", "prompt": "Find why login fails"},
            headers=ADMIN,
        )
        sid = created.json()["sessionId"]
        row = page.locator(f'tr[data-session="{sid}"]')
        await expect(row).to_be_visible(timeout=SEEN_TIMEOUT_MS)
        polled = (await http.get(f"/api/workers/{worker}/poll", headers=WORKER)).json()
        assert [w["sessionId"] for w in polled["work"]] == [sid]
        running = {"workerId": worker, "status": "running"}
        await http.post(f"/api/sessions/{sid}/status", json=running, headers=WORKER)
        await expect(row.locator(".status")).to_have_text("running", timeout=SEEN_TIMEOUT_MS)
        await expect(page.locator("table.fleet")).to_contain_text("agentfactory")
        await snap(page, shots, "overview")

        # The queues page charts the claim; the workers page lists the worker.
        await page.get_by_role("link", name="Queues", exact=True).click()
        queue = page.locator('tr[data-queue="agentfactory"]')
        await expect(queue.locator("td.claims")).to_have_text("1")
        await expect(queue.locator("svg.chart rect")).to_have_count(2)  # claims, wait
        await snap(page, shots, "queues")
        await page.get_by_role("link", name="Workers", exact=True).click()
        await expect(page.locator(f'tr[data-worker="{worker}"]')).to_contain_text("browser-host")
        await snap(page, shots, "workers")

        # The session page: its timeline grows as the worker reports, without a reload.
        await page.goto(f"{url}/console/sessions/{sid}")
        await expect(page.locator("#live")).to_have_text("live", timeout=SEEN_TIMEOUT_MS)
        await expect(page.locator("#timeline")).to_contain_text("running")
        await page.evaluate("window.__same_page = true")
        activity = {
            "workerId": worker,
            "activity": {"type": "action", "content": "pytest -q", "toolName": "Bash"},
        }
        reply = await http.post(f"/api/sessions/{sid}/activity", json=activity, headers=WORKER)
        assert reply.status_code == 200, reply.text
        await expect(page.locator("#timeline")).to_contain_text("action Bash pytest -q")
        assert await page.evaluate("window.__same_page === true")
        await snap(page, shots, "session")

        # Stop it from the page.
        await page.get_by_label("Reason").fill("wrong branch")
        await page.get_by_role("button", name="Stop session").click()
        await expect(page.locator(".notice")).to_have_text("Stopped.")
        await expect(page.locator("#status")).to_have_text("stopped")
        await expect(page.locator("#timeline")).to_contain_text("stopped: wrong branch")
        await expect(page.locator("#live")).to_have_text("ended", timeout=SEEN_TIMEOUT_MS)
        view = (await http.get(f"/api/v1/sessions/{sid}", headers=ADMIN)).json()
        assert view["status"] == "stopped"
        await snap(page, shots, "session-stopped")

        await page.goto(f"{url}/console/sessions?status=stopped")
        await expect(page.locator(f'tr[data-session="{sid}"]')).to_be_visible()
        await snap(page, shots, "sessions")

    assert traffic.outside == [], "requests that left the server's origin"
    # Leaving a page aborts its open event stream, and the browser's lazy favicon fetch when it
    # is still in flight; an error status on either is still counted. Nothing else may fail.
    cancelled = ("/events: net::ERR_ABORTED", "/favicon.svg: net::ERR_ABORTED")
    assert [b for b in traffic.broken if not b.endswith(cancelled)] == []
    assert {"/console/static/console.js", "/console/static/console.css"} <= traffic.paths()
