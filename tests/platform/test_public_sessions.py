"""The public Sessions API (rensei-platform.md §2): an organisation's key reads and steers its
own sessions only, within its scopes and projects, in the reference's shapes and error bodies.
In-process on both databases, with a manual clock."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from shopfloor.clock import ManualClock
from tests.agentfactory.helpers import ADMIN, WORKER, poll, register, status
from tests.platform.test_tenancy import bearer, key, m2m_client, new_org, queue

PUBLIC_ROUTES = [
    ("GET", "/api/public/sessions/{id}", None),
    ("POST", "/api/public/sessions/{id}/prompt", {"prompt": "more"}),
    ("POST", "/api/public/sessions/{id}/stop", None),
    ("GET", "/api/public/session-activities?sessionId={id}", None),
    ("POST", "/api/public/sessions/{id}/reconnect", {"cursor": "0"}),
]
READ_ONLY_POSTS = {"/api/public/sessions/{id}/reconnect"}


def public_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


async def call(
    api: httpx.AsyncClient, method: str, path: str, sid: str, headers: dict[str, str], body: Any
) -> httpx.Response:
    return await api.request(method, path.format(id=sid), json=body, headers=headers)


async def two_orgs(api: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, str], str]:
    await new_org(api, "a")
    await new_org(api, "b")
    key_a, key_b = await key(api, "a"), await key(api, "b")
    session = (await queue(api, key_a, projectName="web", issueIdentifier="ENG-1")).json()
    return key_a, key_b, session["sessionId"]


async def test_list_and_detail_in_the_reference_shapes(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    key_a, _, sid = await two_orgs(api)
    listed = await api.get("/api/public/sessions", headers=key_a)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["count"] == 1 and body["nextCursor"] is None and body["timestamp"]
    [item] = body["sessions"]
    assert item["id"] == public_id(sid) and item["sessionId"] == sid
    assert (item["status"], item["identifier"], item["projectName"]) == ("queued", "ENG-1", "web")
    assert item["health"] == {"status": "green", "signals": []}
    clock.advance(30)
    detail = await api.get(f"/api/public/sessions/{item['id']}", headers=key_a)
    assert detail.status_code == 200, detail.text
    session = detail.json()["session"]
    assert session["duration"] == 30 and session["timeline"]["started"] is None
    assert session["sessionHash"] == hashlib.sha256(f"session:{sid}".encode()).hexdigest()[:32]
    # The raw id names the same session.
    raw = await api.get(f"/api/public/sessions/{sid}", headers=key_a)
    assert raw.json()["session"]["id"] == item["id"]


async def test_a_session_moves_through_the_public_statuses(api: httpx.AsyncClient) -> None:
    session = (await queue(api, ADMIN, issueIdentifier="ENG-2")).json()
    sid = session["sessionId"]
    worker = await register(api)
    assert (await poll(api, worker))["claimedSessionIds"] == [sid]
    assert (await status(api, sid, worker, "running")).status_code == 200
    await api.post(
        f"/api/sessions/{sid}/activity",
        json={"workerId": worker, "activity": {"type": "thought", "content": "reading"}},
        headers=WORKER,
    )
    await api.post(
        f"/api/sessions/{sid}/progress",
        json={"workerId": worker, "milestone": "tests", "message": "running tests"},
        headers=WORKER,
    )
    view = (await api.get(f"/api/public/sessions/{public_id(sid)}", headers=ADMIN)).json()
    assert view["session"]["status"] == "working" and view["session"]["timeline"]["started"]
    page = (
        await api.get("/api/public/session-activities", params={"sessionId": sid}, headers=ADMIN)
    ).json()
    assert [(a["type"], a["content"]) for a in page["activities"]] == [
        ("thought", "reading"),
        ("progress", "running tests"),
    ]
    assert page["sessionStatus"] == "working"
    newer = await api.get(
        "/api/public/session-activities",
        params={"sessionId": public_id(sid), "cursor": page["cursor"]},
        headers=ADMIN,
    )
    assert newer.json()["activities"] == [] and newer.json()["cursor"] == page["cursor"]
    stopped = await api.post(f"/api/public/sessions/{public_id(sid)}/stop", headers=ADMIN)
    assert stopped.json() == {
        "stopped": True,
        "sessionId": public_id(sid),
        "previousStatus": "running",
        "newStatus": "stopped",
    }
    again = await api.post(f"/api/public/sessions/{sid}/stop", headers=ADMIN)
    assert again.json()["stopped"] is False and again.json()["newStatus"] == "stopped"
    # The worker is told on its next poll.
    polled = await poll(api, worker)
    assert any(m["type"] == "stop" for m in polled.get("inboxMessages", {}).get(sid, [])), polled


async def test_reconnect_counts_the_activities_missed_after_the_cursor(
    api: httpx.AsyncClient,
) -> None:
    sid = (await queue(api, ADMIN)).json()["sessionId"]
    worker = await register(api)
    await poll(api, worker)
    assert (await status(api, sid, worker, "running")).status_code == 200
    for n in range(3):
        await api.post(
            f"/api/sessions/{sid}/activity",
            json={"workerId": worker, "activity": {"type": "thought", "content": f"step {n}"}},
            headers=WORKER,
        )
    page = (
        await api.get("/api/public/session-activities", params={"sessionId": sid}, headers=ADMIN)
    ).json()
    first = page["activities"][0]["id"]
    path = f"/api/public/sessions/{public_id(sid)}/reconnect"
    reply = await api.post(path, json={"cursor": first}, headers=ADMIN)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "reconnected": True,
        "sessionId": public_id(sid),
        "sessionStatus": "working",
        "missedEvents": 2,
    }
    by_event_id = await api.post(path, json={"lastEventId": int(first)}, headers=ADMIN)
    assert by_event_id.json()["missedEvents"] == 2
    assert (await api.post(path, json={}, headers=ADMIN)).json()["missedEvents"] == 3
    latest = await api.post(path, json={"cursor": page["cursor"]}, headers=ADMIN)
    assert latest.json()["missedEvents"] == 0
    bad = await api.post(path, json={"cursor": "yesterday"}, headers=ADMIN)
    assert bad.status_code == 400 and "cursor" in bad.json()["error"]


async def test_whoami_names_the_credential(api: httpx.AsyncClient) -> None:
    org_id = await new_org(api, "a")
    scoped = await key(api, "a", projects=["web"], scopes=["sessions:read"])
    me = await api.get("/api/cli/whoami", headers=scoped)
    assert me.status_code == 200, me.text
    body = me.json()
    assert (body["kind"], body["orgId"], body["orgSlug"]) == ("api_key", org_id, "a")
    assert (body["projects"], body["scopes"]) == (
        ["web"],
        ["sessions:read"],
    )
    admin = (await api.get("/api/cli/whoami", headers=ADMIN)).json()
    assert admin == {
        "kind": "admin",
        "identity": "admin",
        "orgId": None,
        "orgSlug": None,
        "projects": "all",
        "scopes": ["*"],
    }
    client = await m2m_client(api, ["workers:read"], orgId="a")
    token = await api.post(
        "/api/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client["clientId"],
            "client_secret": client["clientSecret"],
        },
    )
    m2m = (await api.get("/api/cli/whoami", headers=bearer(token.json()["access_token"]))).json()
    assert (m2m["kind"], m2m["identity"], m2m["orgId"]) == ("m2m", client["clientId"], org_id)
    for refused in ({}, bearer("rsk_live_" + "0" * 64), WORKER):
        reply = await api.get("/api/cli/whoami", headers=refused)
        assert (reply.status_code, reply.json()) == (401, {"error": "Unauthorized"})


async def test_prompt_reaches_a_live_session_and_reopens_an_ended_one(
    api: httpx.AsyncClient,
) -> None:
    sid = (await queue(api, ADMIN, issueIdentifier="ENG-3")).json()["sessionId"]
    worker = await register(api)
    await poll(api, worker)
    await status(api, sid, worker, "running")
    live = await api.post(
        f"/api/public/sessions/{sid}/prompt", json={"prompt": "also X"}, headers=ADMIN
    )
    assert live.status_code == 200, live.text
    assert live.json()["delivered"] is True and live.json()["sessionStatus"] == "working"
    polled = await poll(api, worker)
    [message] = polled["inboxMessages"][sid]
    assert (message["type"], message["payload"]) == ("directive", "also X")
    await status(api, sid, worker, "completed")
    reopened = await api.post(
        f"/api/public/sessions/{public_id(sid)}/prompt", json={"prompt": "one more"}, headers=ADMIN
    )
    assert reopened.json()["status"] == "queued", reopened.text
    view = (await api.get(f"/api/v1/sessions/{sid}", headers=ADMIN)).json()
    assert (view["status"], view["priority"], view["prompt"]) == ("pending", 2, "one more")
    assert (await poll(api, worker))["claimedSessionIds"] == [sid]


async def test_anonymous_activities_need_the_session_hash(api: httpx.AsyncClient) -> None:
    sid = (await queue(api, ADMIN)).json()["sessionId"]
    good = hashlib.sha256(f"session:{sid}".encode()).hexdigest()[:32]
    ok = await api.get(
        "/api/public/session-activities", params={"sessionId": sid, "sessionHash": good}
    )
    assert ok.status_code == 200 and ok.json()["sessionStatus"] == "queued"
    wrong = await api.get(
        "/api/public/session-activities", params={"sessionId": sid, "sessionHash": "0" * 32}
    )
    assert wrong.status_code == 401 and wrong.json() == {"error": "Invalid session hash"}
    # The public id is not enough without a key: the hash is of the raw id.
    hashed = await api.get(
        "/api/public/session-activities", params={"sessionId": public_id(sid), "sessionHash": good}
    )
    assert hashed.status_code == 401
    bare = await api.get("/api/public/session-activities", params={"sessionId": sid})
    assert bare.status_code == 401 and bare.json() == {"error": "Unauthorized"}


async def test_another_organisations_key_neither_sees_nor_acts(api: httpx.AsyncClient) -> None:
    key_a, key_b, sid = await two_orgs(api)
    for ident in (sid, public_id(sid)):
        for method, path, body in PUBLIC_ROUTES:
            reply = await call(api, method, path, ident, key_b, body)
            assert reply.status_code == 404, (path, reply.text)
            assert reply.json() == {"error": "Session not found"}
    assert (await api.get("/api/public/sessions", headers=key_b)).json()["sessions"] == []
    stats = (await api.get("/api/public/stats", headers=key_b)).json()
    assert stats["queueDepth"] == 0 and stats["sessionCountToday"] == 0
    header = await api.get("/api/public/sessions", headers={**key_b, "X-Rensei-Org": "a"})
    assert header.status_code == 403
    # Nothing B tried changed A's session.
    view = (await api.get(f"/api/public/sessions/{sid}", headers=key_a)).json()["session"]
    assert view["status"] == "queued"
    assert (await api.get("/api/public/stats", headers=key_a)).json()["queueDepth"] == 1


async def test_scopes_and_projects_bound_each_route(api: httpx.AsyncClient) -> None:
    _, _, sid = await two_orgs(api)
    reader = await key(api, "a", scopes=["sessions:read"])
    workers_only = await key(api, "a", scopes=["workers:read"])
    other_project = await key(
        api, "a", projects=["api"], scopes=["sessions:read", "sessions:write"]
    )
    for method, path, body in PUBLIC_ROUTES:
        writes = method == "POST" and path not in READ_ONLY_POSTS
        needs = "sessions:write" if writes else "sessions:read"
        refused = await call(api, method, path, sid, workers_only, body)
        assert refused.status_code == 403, path
        assert refused.json() == {"error": f"This key lacks the {needs} scope"}
        if writes:
            assert (await call(api, method, path, sid, reader, body)).status_code == 403
        hidden = await call(api, method, path, sid, other_project, body)
        assert hidden.status_code == 404, path
    for path in ("/api/public/sessions", "/api/public/stats"):
        assert (await api.get(path, headers=workers_only)).status_code == 403
    assert (await api.get("/api/public/sessions", headers=other_project)).json()["count"] == 0
    narrowed = await api.get("/api/public/sessions", params={"projectId": "api"}, headers=reader)
    assert narrowed.json()["count"] == 0
    web = await api.get("/api/public/sessions", headers={**reader, "X-Rensei-Project": "web"})
    assert web.json()["count"] == 1


async def test_an_access_token_reads_its_organisations_sessions(api: httpx.AsyncClient) -> None:
    _, _, sid = await two_orgs(api)
    client = await m2m_client(api, ["sessions:read"], orgId="a")
    token = await api.post(
        "/api/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client["clientId"],
            "client_secret": client["clientSecret"],
        },
    )
    headers = bearer(token.json()["access_token"])
    assert (await api.get("/api/public/sessions", headers=headers)).json()["count"] == 1
    stop = await api.post(f"/api/public/sessions/{sid}/stop", headers=headers)
    assert stop.status_code == 403


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "prompt: Field required"),
        ({"prompt": ""}, "prompt: String should have at least 1 character"),
        ({"prompt": 5}, "prompt: Input should be a valid string"),
        ({"prompt": "x", "extra": 1}, "extra: Extra inputs are not permitted"),
    ],
)
async def test_bad_prompts_name_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    sid = (await queue(api, ADMIN)).json()["sessionId"]
    reply = await api.post(f"/api/public/sessions/{sid}/prompt", json=body, headers=ADMIN)
    assert (reply.status_code, reply.json()) == (400, {"error": message})
    view = (await api.get(f"/api/v1/sessions/{sid}/inbox", headers=ADMIN)).json()
    assert view == []


async def test_bad_query_values_name_the_field(api: httpx.AsyncClient) -> None:
    sid = (await queue(api, ADMIN)).json()["sessionId"]
    cursor = await api.get(
        "/api/public/session-activities", params={"sessionId": sid, "cursor": "x"}, headers=ADMIN
    )
    assert cursor.status_code == 400 and cursor.json()["error"].startswith("cursor:")
    limit = await api.get("/api/public/sessions", params={"limit": 0}, headers=ADMIN)
    assert limit.status_code == 400 and limit.json()["error"].startswith("limit:")
    missing = await api.get("/api/public/session-activities", headers=ADMIN)
    assert missing.json() == {"error": "sessionId is required"}
    too_long = await api.get(f"/api/public/sessions/{'x' * 65}", headers=ADMIN)
    assert too_long.json() == {"error": "Invalid session ID format"}


async def test_stats_count_the_fleet_and_today(api: httpx.AsyncClient, clock: ManualClock) -> None:
    first = (await queue(api, ADMIN, issueIdentifier="ENG-5")).json()["sessionId"]
    await queue(api, ADMIN, issueIdentifier="ENG-6")
    worker = await register(api, capacity=3)
    claimed = (await poll(api, worker))["claimedSessionIds"]
    assert first in claimed
    for sid in claimed:
        await status(api, sid, worker, "running")
    await status(api, first, worker, "completed", totalCostUsd=1.25)
    stats = (await api.get("/api/public/stats", headers=ADMIN)).json()
    assert stats["workersOnline"] == 1 and stats["completedToday"] == 1
    assert stats["agentsWorking"] == len(claimed) - 1
    assert stats["totalCostToday"] == 1.25 and stats["totalCostAllTime"] == 1.25
    assert stats["sessionCountToday"] == 2
    clock.advance(2 * 86_400)
    later = (await api.get("/api/public/stats", headers=ADMIN)).json()
    assert later["completedToday"] == 0 and later["totalCostAllTime"] == 1.25


async def test_a_workers_runtime_token_reads_its_organisations_activities(
    api: httpx.AsyncClient,
) -> None:
    from tests.platform.test_router import runtime_token

    await new_org(api, "a")
    await new_org(api, "b")
    sid = (await queue(api, ADMIN, orgId="a")).json()["sessionId"]
    _, worker_a = await runtime_token(api, "a")
    _, worker_b = await runtime_token(api, "b")
    params = {"sessionId": sid}
    mine = await api.get("/api/public/session-activities", params=params, headers=worker_a)
    assert mine.status_code == 200 and mine.json()["sessionStatus"] == "queued"
    theirs = await api.get("/api/public/session-activities", params=params, headers=worker_b)
    assert (theirs.status_code, theirs.json()) == (404, {"error": "Session not found"})
    # A runtime token reads activities only: not the list.
    assert (await api.get("/api/public/sessions", headers=worker_a)).status_code == 401
