"""Organisations, API keys, M2M clients and OAuth (issue 20): every key acts in its own
organisation, on its projects, within its scopes; nothing of one organisation is visible to or
changeable by another's credential. In-process on both databases, with a manual clock."""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client

from shopfloor.clock import ManualClock
from tests.agentfactory.helpers import ADMIN, WORKER


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_org(api: httpx.AsyncClient, slug: str) -> str:
    reply = await api.post("/api/v1/orgs", json={"slug": slug}, headers=ADMIN)
    assert reply.status_code == 201, reply.text
    org_id: str = reply.json()["id"]
    return org_id


async def mint(
    api: httpx.AsyncClient, org: str, headers: dict[str, str] = ADMIN, **body: Any
) -> httpx.Response:
    return await api.post(f"/api/org/{org}/keys", json={"name": "k", **body}, headers=headers)


async def key(api: httpx.AsyncClient, org: str, **body: Any) -> dict[str, str]:
    reply = await mint(api, org, **body)
    assert reply.status_code == 200, reply.text
    return bearer(reply.json()["key"]["fullKey"])


async def queue(api: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> httpx.Response:
    return await api.post("/api/v1/sessions", json={"prompt": "p", **fields}, headers=headers)


async def test_a_key_is_shown_once_and_stored_as_a_digest(api: httpx.AsyncClient) -> None:
    org = await new_org(api, "acme")
    reply = await mint(api, "acme", projects=["web"], scopes=["sessions:read"])
    minted = reply.json()
    secret = minted["key"]["fullKey"]
    assert secret.startswith("rsk_live_") and len(secret) == len("rsk_live_") + 64
    assert minted["key"]["keyPrefix"] == secret[:13] and minted["token"] == secret
    assert minted["key"]["orgId"] == org and minted["key"]["projectIds"] == ["web"]
    listed = (await api.get(f"/api/org/{org}/keys", headers=ADMIN)).json()["keys"]
    assert [k["id"] for k in listed] == [minted["keyId"]]
    assert "fullKey" not in listed[0] and secret not in str(listed)


async def test_the_deprecated_path_mints_for_the_callers_org(api: httpx.AsyncClient) -> None:
    await new_org(api, "acme")
    admin_of_acme = await key(api, "acme")
    reply = await api.post("/api/org/api-keys", json={"name": "old"}, headers=admin_of_acme)
    assert reply.status_code == 200 and reply.headers["deprecation"] == "true"
    assert (
        reply.json()["key"]["orgId"]
        == (await api.get("/api/v1/orgs", headers=ADMIN)).json()[0]["id"]
    )


async def test_a_key_acts_in_its_own_organisation_only(api: httpx.AsyncClient) -> None:
    a, b = await new_org(api, "a"), await new_org(api, "b")
    key_a, key_b = await key(api, "a"), await key(api, "b")
    session = (await queue(api, key_a, projectName="web")).json()
    assert session["orgId"] == a
    # B's key: no read, no write, no listing, not even its existence.
    assert (
        await api.get(f"/api/v1/sessions/{session['sessionId']}", headers=key_b)
    ).status_code == 404
    for action in ("stop", "prompt", "nudge"):
        reply = await api.post(
            f"/api/v1/sessions/{session['sessionId']}/{action}",
            json={"text": "x"} if action == "prompt" else {},
            headers=key_b,
        )
        assert reply.status_code == 404, action
    for path in ("activity", "inbox", "recovery"):
        reply = await api.get(f"/api/v1/sessions/{session['sessionId']}/{path}", headers=key_b)
        assert reply.status_code == 404, path
    assert (await api.get("/api/v1/sessions", headers=key_b)).json()["sessions"] == []
    assert (await mint(api, a, headers=key_b)).status_code == 403
    assert (await api.get(f"/api/org/{a}/keys", headers=key_b)).status_code == 403
    assert (await queue(api, key_b, orgId=a)).status_code == 403
    # The admin key sees both, and may pick one organisation.
    mine = (await api.get("/api/v1/sessions", params={"orgId": "a"}, headers=ADMIN)).json()
    assert [s["sessionId"] for s in mine["sessions"]] == [session["sessionId"]]
    assert (await api.get("/api/v1/sessions", params={"orgId": b}, headers=ADMIN)).json()[
        "sessions"
    ] == []
    view = (await api.get(f"/api/v1/sessions/{session['sessionId']}", headers=ADMIN)).json()
    assert view["status"] == "pending"  # nothing B tried changed it


async def test_scopes_and_projects_bound_a_key(api: httpx.AsyncClient) -> None:
    await new_org(api, "acme")
    reader = await key(api, "acme", scopes=["sessions:read"])
    web = await key(api, "acme", projects=["web"], scopes=["sessions:read", "sessions:write"])
    refused = await queue(api, reader, projectName="web")
    assert refused.status_code == 403
    assert refused.json()["message"] == "This key lacks the sessions:write scope"
    assert (await queue(api, web, projectName="api")).status_code == 403
    assert (await queue(api, web)).status_code == 403  # a project key names its project
    ok = await queue(api, web, projectName="web")
    assert ok.status_code == 201
    admin_of_acme = await key(api, "acme")
    other = await queue(api, admin_of_acme, projectName="api")
    listed = (await api.get("/api/v1/sessions", headers=web)).json()["sessions"]
    assert [s["sessionId"] for s in listed] == [ok.json()["sessionId"]]
    hidden = await api.get(f"/api/v1/sessions/{other.json()['sessionId']}", headers=web)
    assert hidden.status_code == 404
    assert (await api.get("/api/v1/orgs", headers=admin_of_acme)).status_code == 403


async def test_a_key_never_mints_more_than_it_has(api: httpx.AsyncClient) -> None:
    await new_org(api, "acme")
    web = await key(api, "acme", projects=["web"], scopes=["org_keys:write", "sessions:read"])
    assert (await mint(api, "acme", headers=web)).status_code == 403  # organisation-wide
    assert (await mint(api, "acme", headers=web, projects=["api"])).status_code == 403
    wider = await mint(api, "acme", headers=web, projects=["web"], scopes=["sessions:write"])
    assert wider.status_code == 403
    assert wider.json()["message"] == "scopes: this key may not grant sessions:write"
    narrower = await mint(api, "acme", headers=web, projects=["web"], scopes=["sessions:read"])
    assert narrower.status_code == 200
    bad = await mint(api, "acme", scopes=["root"])
    assert (bad.status_code, bad.json()["message"]) == (400, "scopes: unknown scope root")
    assert (await mint(api, "acme", projects=[])).status_code == 400


async def test_revoking_a_key_revokes_it_at_once(api: httpx.AsyncClient) -> None:
    await new_org(api, "acme")
    reply = await mint(api, "acme")
    token, key_id = bearer(reply.json()["key"]["fullKey"]), reply.json()["keyId"]
    assert (await api.get("/api/v1/sessions", headers=token)).status_code == 200
    revoked = await api.delete(f"/api/org/acme/keys/{key_id}", headers=ADMIN)
    assert revoked.json() == {"revoked": True, "keyId": key_id}
    assert (await api.get("/api/v1/sessions", headers=token)).status_code == 401


async def test_an_expired_key_is_refused(api: httpx.AsyncClient, clock: ManualClock) -> None:
    await new_org(api, "acme")
    token = await key(api, "acme", expiresAt=clock.now_ms() + 60_000)
    assert (await api.get("/api/v1/sessions", headers=token)).status_code == 200
    clock.advance(61)
    assert (await api.get("/api/v1/sessions", headers=token)).status_code == 401


async def test_each_organisation_has_its_own_worker_queue(api: httpx.AsyncClient) -> None:
    await new_org(api, "acme")
    acme_tokens = await api.post("/api/v1/registration-tokens", json={"org": "acme"}, headers=ADMIN)
    registered = await api.post(
        "/api/workers/register",
        json={"hostname": "h", "capacity": 5},
        headers=bearer(acme_tokens.json()["token"]),
    )
    acme_worker = registered.json()["workerId"]
    acme_jwt = bearer(registered.json()["runtimeToken"])
    default_worker = (
        await api.post(
            "/api/workers/register", json={"hostname": "d", "capacity": 5}, headers=WORKER
        )
    ).json()["workerId"]
    ours = (await queue(api, ADMIN, orgId="acme")).json()["sessionId"]
    theirs = (await queue(api, ADMIN)).json()["sessionId"]
    polled = (await api.get(f"/api/workers/{acme_worker}/poll", headers=acme_jwt)).json()
    assert polled["claimedSessionIds"] == [ours]
    polled = (await api.get(f"/api/workers/{default_worker}/poll", headers=WORKER)).json()
    assert polled["claimedSessionIds"] == [theirs]
    # The static key is the default organisation's: it may not act for acme's worker.
    borrowed = await api.get(f"/api/workers/{acme_worker}/poll", headers=WORKER)
    assert borrowed.status_code == 403
    spoof = await api.post(
        f"/api/sessions/{ours}/activity",
        json={"workerId": acme_worker, "activity": {"type": "thought", "content": "x"}},
        headers=WORKER,
    )
    assert spoof.status_code == 403
    # acme's worker sees nothing of the default organisation's session.
    peek = await api.get(f"/api/sessions/{theirs}/status", headers=acme_jwt)
    assert peek.status_code == 404


async def org_worker(api: httpx.AsyncClient, org_slug: str | None) -> tuple[str, dict[str, str]]:
    """A worker of the organisation (None: the default one, with the static worker key)."""
    headers = WORKER
    if org_slug is not None:
        token = await api.post("/api/v1/registration-tokens", json={"org": org_slug}, headers=ADMIN)
        headers = bearer(token.json()["token"])
    registered = await api.post(
        "/api/workers/register", json={"hostname": "h", "capacity": 5}, headers=headers
    )
    assert registered.status_code == 201, registered.text
    body = registered.json()
    return body["workerId"], bearer(body["runtimeToken"]) if org_slug else WORKER


async def test_issue_ids_are_per_organisation(api: httpx.AsyncClient) -> None:
    """Two organisations may use the same issue id: neither's session parks the other's, an
    ending promotes only its own organisation's parked work, and each organisation's worker
    sees its own issue record under that id."""
    await new_org(api, "acme")
    issue = {"issueId": "ENG-1", "issueIdentifier": "ENG-1"}
    ours = (await queue(api, ADMIN, orgId="acme", title="Acme's", **issue)).json()
    theirs = (await queue(api, ADMIN, title="Default's", **issue)).json()
    assert (ours["status"], theirs["status"]) == ("pending", "pending")
    # Within one organisation the lock still parks the second session on the issue.
    parked = (await queue(api, ADMIN, orgId="acme", workType="qa", **issue)).json()
    assert parked["status"] == "parked"
    acme_worker, acme_auth = await org_worker(api, "acme")
    default_worker, default_auth = await org_worker(api, None)
    polled = (await api.get(f"/api/workers/{acme_worker}/poll", headers=acme_auth)).json()
    assert polled["claimedSessionIds"] == [ours["sessionId"]]
    polled = (await api.get(f"/api/workers/{default_worker}/poll", headers=default_auth)).json()
    assert polled["claimedSessionIds"] == [theirs["sessionId"]]

    async def proxy(headers: dict[str, str], *args: str) -> httpx.Response:
        body = {"method": "getIssue", "args": list(args)}
        return await api.post("/api/issue-tracker-proxy", json=body, headers=headers)

    assert (await proxy(acme_auth, "ENG-1")).json()["data"]["title"] == "Acme's"
    assert (await proxy(default_auth, "ENG-1")).json()["data"]["title"] == "Default's"
    only_acme = await queue(api, ADMIN, orgId="acme", issueId="ENG-7", title="Acme only")
    assert only_acme.status_code == 201
    assert (await proxy(acme_auth, "ENG-7")).json()["data"]["title"] == "Acme only"
    missing = await proxy(default_auth, "ENG-7")
    assert (missing.status_code, missing.json()["success"]) == (404, False)
    # The default organisation's holder ends: acme's parked work on ENG-1 stays parked.
    for status in ("running", "finalizing", "completed"):
        reply = await api.post(
            f"/api/sessions/{theirs['sessionId']}/status",
            json={"workerId": default_worker, "status": status},
            headers=default_auth,
        )
        assert reply.status_code == 200, reply.text
    view = await api.get(f"/api/v1/sessions/{parked['sessionId']}", headers=ADMIN)
    assert view.json()["status"] == "parked"
    # Acme's holder ends: its own parked work is promoted.
    for status in ("running", "finalizing", "completed"):
        reply = await api.post(
            f"/api/sessions/{ours['sessionId']}/status",
            json={"workerId": acme_worker, "status": status},
            headers=acme_auth,
        )
        assert reply.status_code == 200, reply.text
    view = await api.get(f"/api/v1/sessions/{parked['sessionId']}", headers=ADMIN)
    assert view.json()["status"] == "pending"


# -- M2M clients and OAuth 2.0 client_credentials --


async def m2m_client(
    api: httpx.AsyncClient, scopes: list[str], headers: dict[str, str] = ADMIN, **body: Any
) -> dict[str, Any]:
    reply = await api.post(
        "/api/admin/m2m-clients", json={"name": "ci", "scopes": scopes, **body}, headers=headers
    )
    assert reply.status_code == 201, reply.text
    client: dict[str, Any] = reply.json()["client"]
    return client


def oauth(api: httpx.AsyncClient, client: dict[str, Any]) -> AsyncOAuth2Client:
    """authlib's OAuth 2.0 client (over httpx2, which authlib uses), talking to the app
    in-process; it authenticates with HTTP Basic (client_secret_basic), its default."""
    return AsyncOAuth2Client(
        client_id=client["clientId"],
        client_secret=client["clientSecret"],
        transport=httpx2.ASGITransport(app=api.app),  # type: ignore[attr-defined]
        base_url="http://shopfloor",
    )


async def test_client_credentials_with_a_real_oauth_client(api: httpx.AsyncClient) -> None:
    org = await new_org(api, "acme")
    client = await m2m_client(api, ["sessions:read", "sessions:write"], orgId="acme")
    assert client["clientId"].startswith("m2m_") and client["clientSecret"].startswith("m2ms_")
    assert client["orgId"] == org
    async with oauth(api, client) as session:
        token = await session.fetch_token("/api/oauth/token", grant_type="client_credentials")
        assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
        queued = await session.post("/api/v1/sessions", json={"prompt": "from CI"})
        assert queued.status_code == 201 and queued.json()["orgId"] == org
        assert (await session.get("/api/v1/workers")).status_code == 403  # no workers:read


async def test_client_credentials_in_a_form_or_json_body(api: httpx.AsyncClient) -> None:
    client = await m2m_client(api, ["sessions:read"])
    form = {
        "grant_type": "client_credentials",
        "client_id": client["clientId"],
        "client_secret": client["clientSecret"],
    }
    by_form = await api.post("/api/oauth/token", data=form)
    by_json = await api.post("/api/oauth/token", json=form)
    for reply in (by_form, by_json):
        assert reply.status_code == 200, reply.text
        assert reply.headers["cache-control"] == "no-store"
        assert reply.json()["scope"] == "sessions:read"


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": None}, 400, "invalid_request"),
        ({"client_secret": "m2ms_wrong"}, 401, "invalid_client"),
        ({"client_id": "m2m_nobody"}, 401, "invalid_client"),
        ({"client_secret": None}, 401, "invalid_client"),
        ({"scope": "sessions:write"}, 400, "invalid_scope"),
    ],
)
async def test_token_errors_are_rfc_6749(
    api: httpx.AsyncClient, change: dict[str, Any], status: int, error: str
) -> None:
    client = await m2m_client(api, ["sessions:read"])
    form = {
        "grant_type": "client_credentials",
        "client_id": client["clientId"],
        "client_secret": client["clientSecret"],
    }
    form.update(change)
    reply = await api.post("/api/oauth/token", data={k: v for k, v in form.items() if v})
    assert reply.status_code == status
    assert reply.json()["error"] == error and reply.json()["error_description"]


async def test_an_access_token_expires_and_dies_with_its_client(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    client = await m2m_client(api, ["sessions:read"])
    form = {
        "grant_type": "client_credentials",
        "client_id": client["clientId"],
        "client_secret": client["clientSecret"],
    }
    first = bearer((await api.post("/api/oauth/token", data=form)).json()["access_token"])
    assert (await api.get("/api/v1/sessions", headers=first)).status_code == 200
    clock.advance(3601)
    assert (await api.get("/api/v1/sessions", headers=first)).status_code == 401
    second = bearer((await api.post("/api/oauth/token", data=form)).json()["access_token"])
    assert (await api.get("/api/v1/sessions", headers=second)).status_code == 200
    gone = await api.delete(f"/api/admin/m2m-clients/{client['clientId']}", headers=ADMIN)
    assert gone.json() == {"revoked": True, "clientId": client["clientId"]}
    assert (await api.get("/api/v1/sessions", headers=second)).status_code == 401
    again = await api.post("/api/oauth/token", data=form)
    assert (again.status_code, again.json()["error"]) == (401, "invalid_client")


async def test_m2m_clients_of_another_organisation_are_out_of_reach(
    api: httpx.AsyncClient,
) -> None:
    await new_org(api, "a")
    await new_org(api, "b")
    key_a, key_b = await key(api, "a"), await key(api, "b")
    client = await m2m_client(api, ["sessions:read"], headers=key_a)
    listed = (await api.get("/api/admin/m2m-clients", headers=key_b)).json()["clients"]
    assert listed == []
    gone = await api.delete(f"/api/admin/m2m-clients/{client['clientId']}", headers=key_b)
    assert gone.status_code == 404
    project_key = await key(api, "a", projects=["web"], scopes=["org_keys:write"])
    refused = await api.post(
        "/api/admin/m2m-clients", json={"name": "x", "scopes": ["*"]}, headers=project_key
    )
    assert refused.status_code == 403


async def test_environments_belong_to_an_organisation(api: httpx.AsyncClient) -> None:
    await new_org(api, "a")
    await new_org(api, "b")
    manager_a, manager_b = await key(api, "a"), await key(api, "b")
    made = await api.post("/v1/environments", json={"name": "farm-a"}, headers=manager_a)
    assert made.status_code == 200, made.text
    env_a = made.json()["id"]
    assert (await api.get("/v1/environments", headers=manager_b)).json()["data"] == []
    for method, path in [
        ("GET", f"/v1/environments/{env_a}"),
        ("POST", f"/v1/environments/{env_a}/archive"),
        ("DELETE", f"/v1/environments/{env_a}"),
    ]:
        reply = await api.request(method, path, headers=manager_b)
        assert reply.status_code == 404, (method, path)
    tokens_b = await api.post("/api/v1/registration-tokens", json={}, headers=manager_b)
    worker_b = bearer(tokens_b.json()["token"])  # organisation-wide, of b
    poll = await api.get(f"/v1/environments/{env_a}/work/poll", headers=worker_b)
    assert poll.status_code == 403
    # A key naming a's environment as its project is still b's: refused.
    smuggled = await mint(
        api, "b", headers=manager_b, projects=[env_a], keyType="worker_registration"
    )
    poll = await api.get(
        f"/v1/environments/{env_a}/work/poll", headers=bearer(smuggled.json()["key"]["fullKey"])
    )
    assert poll.status_code == 403
    tokens_a = await api.post("/api/v1/registration-tokens", json={}, headers=manager_a)
    poll = await api.get(
        f"/v1/environments/{env_a}/work/poll", headers=bearer(tokens_a.json()["token"])
    )
    assert poll.status_code == 200
    # The admin key still sees every organisation's environments.
    listed = (await api.get("/v1/environments", headers=ADMIN)).json()["data"]
    assert env_a in [e["id"] for e in listed]
