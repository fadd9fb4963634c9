"""Console sign-in, its cookie, CSRF, and tenancy: an organisation's key sees and touches only
its organisation's (and its projects') sessions and workers, in pages, streams and actions.
In-process on both databases."""

from __future__ import annotations

import httpx

from tests.agentfactory.helpers import ADMIN, enqueue, register
from tests.conftest import ADMIN_KEY
from tests.console.helpers import COOKIE, browser, csrf_of, sign_in
from tests.platform.test_tenancy import key, new_org, queue


def secret(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def test_sign_in_keeps_an_http_only_strict_cookie_not_the_key(
    api: httpx.AsyncClient,
) -> None:
    async with browser(api) as b:
        assert (await b.get("/console/")).headers["location"] == "/console/login"
        r = await sign_in(b, ADMIN_KEY)
        assert r.status_code == 303 and r.headers["location"] == "/console/"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=") and ADMIN_KEY not in cookie
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        page = await b.get("/console/")
        assert page.status_code == 200 and "Overview" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        # Signed out: the cookie goes, the pages ask for a key again.
        out = await b.post("/console/logout", data={"csrf": csrf_of(page)})
        assert out.status_code == 303 and 'shopfloor_console=""' in out.headers["set-cookie"]
        assert (await b.get("/console/")).status_code == 303


async def test_what_cannot_sign_in(api: httpx.AsyncClient) -> None:
    await new_org(api, "acme")
    no_read = secret(await key(api, "acme", scopes=["workers:read"]))
    reply = await api.post("/api/v1/registration-tokens", json={}, headers=ADMIN)
    registration = reply.json()["token"]
    async with browser(api) as b:
        for bad, status in (("nope", 401), (registration, 401), ("", 401), (no_read, 403)):
            r = await sign_in(b, bad)
            assert r.status_code == status, bad
            assert "set-cookie" not in r.headers
        r = await b.post(
            "/console/login", data={"key": ADMIN_KEY}, headers={"Origin": "http://evil.example"}
        )
        assert r.status_code == 403 and "set-cookie" not in r.headers


async def test_a_forged_or_revoked_login_is_signed_out(api: httpx.AsyncClient) -> None:
    org = await new_org(api, "acme")
    reply = await api.post(
        f"/api/org/{org}/keys", json={"name": "k", "scopes": ["*"]}, headers=ADMIN
    )
    minted = reply.json()
    async with browser(api) as b:
        assert (await sign_in(b, minted["token"])).status_code == 303
        assert (await b.get("/console/")).status_code == 200
        token = b.cookies[COOKIE]
        version, kid, payload, mac = token.split(".")
        forged = f"{version}.{kid}.{payload.replace('A', 'B', 1)}.{mac}"
        b.cookies.set(COOKIE, forged)
        assert (await b.get("/console/")).status_code == 303
        b.cookies.set(COOKIE, token)
        revoked = await api.delete(f"/api/org/{org}/keys/{minted['keyId']}", headers=ADMIN)
        assert revoked.status_code == 200, revoked.text
        assert (await b.get("/console/")).status_code == 303


async def test_a_post_needs_the_login_csrf_secret(api: httpx.AsyncClient) -> None:
    session = await enqueue(api)
    sid = session["sessionId"]
    async with browser(api) as b:
        await sign_in(b, ADMIN_KEY)
        page = await b.get(f"/console/sessions/{sid}")
        csrf = csrf_of(page)
        for fields, headers in (
            ({}, {}),
            ({"csrf": "0" * 32}, {}),
            ({"csrf": csrf}, {"Origin": "http://evil.example"}),
        ):
            r = await b.post(f"/console/sessions/{sid}/stop", data=fields, headers=headers)
            assert r.status_code == 403
        assert (await _status(api, sid)) == "pending"
        r = await b.post(f"/console/sessions/{sid}/stop", data={"csrf": csrf, "reason": "no"})
        assert r.status_code == 303
        assert "Stopped" in (await b.get(r.headers["location"])).text
        assert (await _status(api, sid)) == "stopped"


async def test_prompt_and_nudge_reach_the_inbox(api: httpx.AsyncClient) -> None:
    sid = (await enqueue(api))["sessionId"]
    async with browser(api) as b:
        await sign_in(b, ADMIN_KEY)
        csrf = csrf_of(await b.get(f"/console/sessions/{sid}"))
        r = await b.post(f"/console/sessions/{sid}/prompt", data={"csrf": csrf, "text": "Also X"})
        assert r.status_code == 303
        r = await b.post(f"/console/sessions/{sid}/nudge", data={"csrf": csrf})
        assert r.status_code == 303
        empty = await b.post(f"/console/sessions/{sid}/prompt", data={"csrf": csrf, "text": ""})
        assert "text%3A" in empty.headers["location"]
    inbox = (await api.get(f"/api/v1/sessions/{sid}/inbox", headers=ADMIN)).json()
    assert [(m["type"], m["payload"], m["userName"]) for m in inbox] == [
        ("directive", "Also X", "console"),
        ("nudge", "", "console"),
    ]


async def test_an_org_key_sees_and_touches_only_its_own(api: httpx.AsyncClient) -> None:
    await new_org(api, "a")
    await new_org(api, "b")
    key_a = await key(api, "a", scopes=["*"])
    key_b = await key(api, "b", scopes=["*"])
    web_only = await key(api, "a", projects=["web"], scopes=["sessions:read", "sessions:write"])
    theirs = (await queue(api, key_a, projectName="api", title="A's secret")).json()["sessionId"]
    web = (await queue(api, key_a, projectName="web", title="web work")).json()["sessionId"]
    await register(api)  # a worker of the default organisation
    async with browser(api) as b:
        assert (await sign_in(b, secret(key_b))).status_code == 303
        for path in ("/console/", "/console/sessions", "/console/sessions?project=api"):
            page = await b.get(path)
            assert page.status_code == 200
            assert (
                theirs not in page.text and web not in page.text and "A's secret" not in page.text
            )
            assert "wkr_" not in page.text  # no other organisation's worker
        csrf = csrf_of(await b.get("/console/"))
        for sid in (theirs, web):
            assert (await b.get(f"/console/sessions/{sid}")).status_code == 404
            assert (await b.get(f"/console/sessions/{sid}/events")).status_code == 404
            for action in ("stop", "prompt", "nudge"):
                r = await b.post(
                    f"/console/sessions/{sid}/{action}", data={"csrf": csrf, "text": "x"}
                )
                assert r.status_code == 404
        assert await _status(api, theirs) == "pending"
        inbox = await api.get(f"/api/v1/sessions/{theirs}/inbox", headers=ADMIN)
        assert inbox.json() == []

    async with browser(api) as b:
        assert (await sign_in(b, secret(web_only))).status_code == 303
        listed = (await b.get("/console/sessions")).text
        assert web in listed and theirs not in listed
        overview = (await b.get("/console/")).text
        assert "A&#39;s secret" not in overview and theirs not in overview
        assert (await b.get(f"/console/sessions/{theirs}")).status_code == 404
        assert (await b.get(f"/console/sessions/{web}")).status_code == 200

    async with browser(api) as b:  # the admin key sees every organisation
        await sign_in(b, ADMIN_KEY)
        listed = (await b.get("/console/sessions")).text
        assert theirs in listed and web in listed


async def test_the_event_stream_sends_the_timeline_then_ends(api: httpx.AsyncClient) -> None:
    sid = (await enqueue(api))["sessionId"]
    stopped = await api.post(f"/api/v1/sessions/{sid}/stop", json={"reason": "r"}, headers=ADMIN)
    assert stopped.status_code == 200
    async with browser(api) as b:
        assert (await b.get(f"/console/sessions/{sid}/events")).status_code == 401
        await sign_in(b, ADMIN_KEY)
        r = await b.get(f"/console/sessions/{sid}/events")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        ids = [int(line[4:]) for line in r.text.splitlines() if line.startswith("id: ")]
        assert len(ids) >= 2 and "stopped: r" in r.text
        assert r.text.rstrip().endswith('data: {"status": "stopped"}')
        again = await b.get(
            f"/console/sessions/{sid}/events", headers={"Last-Event-ID": str(ids[-1])}
        )
        assert "id: " not in again.text and "event: end" in again.text


async def _status(api: httpx.AsyncClient, sid: str) -> str:
    r = await api.get(f"/api/v1/sessions/{sid}", headers=ADMIN)
    status: str = r.json()["status"]
    return status
