"""The console's queues page (claims and waits per queue over the last minutes, charted as
SVG) and workers page (paged and filtered on the server), with tenancy: an organisation's
key sees only its own queues and workers. In-process on both databases."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from shopfloor.clock import ManualClock
from tests.agentfactory.helpers import ADMIN, WORKER, enqueue, poll, register
from tests.conftest import ADMIN_KEY, Backend, make_settings, running_app
from tests.console.helpers import browser, sign_in
from tests.console.test_console_auth import secret
from tests.platform.test_tenancy import bearer, key, new_org, queue


def claims_of(page: str, queue_name: str) -> int:
    row = re.search(rf'<tr data-queue="{re.escape(queue_name)}">(.*?)</tr>', page, re.S)
    assert row, page
    found = re.search(r'<td class="claims">(\d+)</td>', row.group(1))
    assert found, row.group(1)
    return int(found.group(1))


async def test_queues_chart_the_claims_and_waits_of_the_last_minutes(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    for _ in range(3):
        await enqueue(api)
    clock.advance(30)
    worker = await register(api, capacity=2)
    assert len((await poll(api, worker))["work"]) == 2
    async with browser(api) as b:
        await sign_in(b, ADMIN_KEY)
        page = await b.get("/console/queues")
        assert page.status_code == 200
        assert claims_of(page.text, "agentfactory") == 2
        assert "30.0s" in page.text  # both had waited 30 s
        assert page.text.count("<svg") == 2 and "<rect" in page.text
        assert "<script" not in page.text.split("</head>")[1]  # drawn on the server
        # Sixteen minutes on, the claims have left the window; the pending one stays.
        clock.advance(16 * 60)
        later = await b.get("/console/queues")
        assert claims_of(later.text, "agentfactory") == 0
        assert "<svg" not in later.text
        overview = await b.get("/console/")
        assert 'href="/console/queues"' in overview.text


async def test_claims_reach_the_chart_through_the_database_from_any_process(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    """Two apps on one database, as two server processes: the claims one makes show on
    the queues page the other draws."""
    settings = make_settings(backend, tmp_path)
    async with running_app(settings, clock) as one, running_app(settings, clock) as other:
        for _ in range(4):
            await enqueue(one)
        worker = await register(one, capacity=4)
        assert len((await poll(one, worker))["work"]) == 4
        async with browser(other) as b:
            await sign_in(b, ADMIN_KEY)
            # The claiming process stores its counts every few seconds (here: at its next
            # flush, which its lifespan's end also runs).
            assert claims_of((await b.get("/console/queues")).text, "agentfactory") == 0
            services = one.app.state.services  # type: ignore[attr-defined]
            await services.dispatcher.queue_history.flush()
            assert claims_of((await b.get("/console/queues")).text, "agentfactory") == 4
            # Both processes claim in the same minute: their counts add up in one row.
            for _ in range(2):
                await enqueue(other)
            worker = await register(other, capacity=2)
            assert len((await poll(other, worker))["work"]) == 2
            await services.dispatcher.queue_history.flush()
            page = (await b.get("/console/queues")).text
            assert claims_of(page, "agentfactory") == 6


async def test_an_org_key_sees_only_its_own_queues(api: httpx.AsyncClient) -> None:
    await new_org(api, "a")
    await new_org(api, "b")
    key_a = await key(api, "a", scopes=["*"])
    key_b = await key(api, "b", scopes=["*"])
    web_only = await key(api, "a", projects=["web"], scopes=["sessions:read"])
    await queue(api, key_a, projectName="api", title="A's api work")
    await queue(api, key_a, projectName="web", title="A's web work")
    tokens = await api.post("/api/v1/registration-tokens", json={"org": "a"}, headers=ADMIN)
    registered = await api.post(
        "/api/workers/register",
        json={"hostname": "h", "capacity": 5},
        headers=bearer(tokens.json()["token"]),
    )
    a_worker = registered.json()["workerId"]
    runtime = bearer(registered.json()["runtimeToken"])
    polled = await api.get(f"/api/workers/{a_worker}/poll", headers=runtime)
    assert len(polled.json()["claimedSessionIds"]) == 2
    await enqueue(api)  # the default organisation's
    async with browser(api) as b:
        assert (await sign_in(b, secret(key_b))).status_code == 303
        page = (await b.get("/console/queues")).text
        assert "data-queue=" not in page and "<svg" not in page
    async with browser(api) as b:
        await sign_in(b, secret(key_a))
        page = (await b.get("/console/queues")).text
        assert re.findall(r'data-queue="([^"]+)"', page) == ["agentfactory:" + _org(page)] * 2
        assert ">api<" in page and ">web<" in page
    async with browser(api) as b:
        await sign_in(b, secret(web_only))
        page = (await b.get("/console/queues")).text
        assert ">web<" in page and ">api<" not in page
        assert claims_of(page, re.findall(r'data-queue="([^"]+)"', page)[0]) == 1


def _org(page: str) -> str:
    found = re.search(r'data-queue="agentfactory:([^"]+)"', page)
    assert found, page
    return found.group(1)


async def every_page(b: httpx.AsyncClient, path: str) -> list[list[str]]:
    """The worker ids of each page, following the pages' own "next" links."""
    pages: list[list[str]] = []
    at: str | None = path
    while at is not None:
        page = await b.get(at)
        assert page.status_code == 200
        pages.append(re.findall(r'<tr data-worker="([^"]+)">', page.text))
        found = re.search(r'class="next" href="([^"]+)"', page.text)
        at = found.group(1).replace("&amp;", "&") if found else None
    return pages


async def test_workers_are_paged_and_filtered_on_the_server(api: httpx.AsyncClient) -> None:
    ids = {await register(api, capacity=1) for _ in range(120)}
    gone = await register(api)
    assert (await api.delete(f"/api/workers/{gone}", headers=WORKER)).status_code == 200
    async with browser(api) as b:
        await sign_in(b, ADMIN_KEY)
        active = await every_page(b, "/console/workers")  # active ones, by default
        assert [len(p) for p in active] == [50, 50, 20]
        assert {w for p in active for w in p} == ids
        everyone = await every_page(b, "/console/workers?status=")  # any status
        assert [len(p) for p in everyone] == [50, 50, 21]
        assert {w for p in everyone for w in p} == ids | {gone}
        ended = await b.get("/console/workers?status=deregistered")
        assert re.findall(r'<tr data-worker="([^"]+)">', ended.text) == [gone]
        none = await b.get("/console/workers?protocol=veryfront")
        assert "<tr data-worker=" not in none.text and "No workers match" in none.text
        assert (await b.get("/console/workers?status=zombie")).status_code == 400
        assert (await b.get("/console/workers?protocol=x")).status_code == 400
        assert 'href="/console/workers"' in (await b.get("/console/")).text


async def test_an_org_key_sees_only_its_own_workers(api: httpx.AsyncClient) -> None:
    await new_org(api, "a")
    default_worker = await register(api)
    tokens = await api.post("/api/v1/registration-tokens", json={"org": "a"}, headers=ADMIN)
    registered = await api.post(
        "/api/workers/register",
        json={"hostname": "h", "capacity": 5},
        headers=bearer(tokens.json()["token"]),
    )
    a_worker = registered.json()["workerId"]
    key_a = await key(api, "a", scopes=["*"])
    no_workers = await key(api, "a", scopes=["sessions:read"])
    async with browser(api) as b:
        await sign_in(b, secret(key_a))
        page = (await b.get("/console/workers?status=")).text
        assert re.findall(r'<tr data-worker="([^"]+)">', page) == [a_worker]
        assert default_worker not in page
        # Paging past the other organisation's ids shows nothing of it either.
        after = await b.get(f"/console/workers?status=&after={min(a_worker, default_worker)}")
        assert default_worker not in after.text
    async with browser(api) as b:
        await sign_in(b, secret(no_workers))
        assert (await b.get("/console/workers")).status_code == 403
        assert 'href="/console/workers"' not in (await b.get("/console/")).text
