"""A project's default agent (`resolvedProfile`, `modelProfile`): set once by the operator,
delivered with every session of the project that does not choose its own (issue 28)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.agentfactory.helpers import ADMIN, poll, register

PROFILE = {"provider": "codex", "runner": "native", "model": "gpt-5", "effort": "medium"}
MODEL = {"id": "mp-2", "providerId": "openai", "model": "gpt-5", "tier": 1}


async def put(api: httpx.AsyncClient, project: str, body: Any, **kw: Any) -> httpx.Response:
    return await api.put(f"/api/v1/projects/{project}/defaults", json=body, **kw)


async def queue(api: httpx.AsyncClient, **fields: Any) -> str:
    reply = await api.post("/api/v1/sessions", json={"prompt": "p", **fields}, headers=ADMIN)
    assert reply.status_code == 201, reply.text
    session_id: str = reply.json()["sessionId"]
    return session_id


async def test_sessions_of_a_project_get_its_default_agent_unless_they_choose(
    api: httpx.AsyncClient,
) -> None:
    set_ = await put(api, "web", {"resolvedProfile": PROFILE, "modelProfile": MODEL}, headers=ADMIN)
    assert set_.status_code == 200, set_.text
    shown = (await api.get("/api/v1/projects/web/defaults", headers=ADMIN)).json()
    assert (shown["resolvedProfile"], shown["modelProfile"]) == (PROFILE, MODEL)
    defaulted = await queue(api, projectName="web")
    own = {"provider": "claude", "model": "claude-sonnet-4"}
    chosen = await queue(api, projectName="web", resolvedProfile=own)
    elsewhere = await queue(api, projectName="api")
    worker = await register(api, capacity=5)
    items = {w["sessionId"]: w for w in (await poll(api, worker))["work"]}
    assert items[defaulted]["resolvedProfile"] == PROFILE
    assert items[defaulted]["modelProfile"] == MODEL
    assert items[chosen]["resolvedProfile"] == own and items[chosen]["modelProfile"] == MODEL
    assert "resolvedProfile" not in items[elsewhere]
    # Replacing the defaults changes new sessions only; an empty body clears them.
    assert (await put(api, "web", {}, headers=ADMIN)).status_code == 200
    cleared = await api.get("/api/v1/projects/web/defaults", headers=ADMIN)
    assert cleared.json()["resolvedProfile"] is None and cleared.json()["updatedAt"] is None
    plain = await queue(api, projectName="web")
    (item,) = (await poll(api, worker))["work"]
    assert item["sessionId"] == plain and "resolvedProfile" not in item


async def test_defaults_stay_in_their_organisation_and_project(api: httpx.AsyncClient) -> None:
    org = await api.post("/api/v1/orgs", json={"slug": "acme"}, headers=ADMIN)
    minted = await api.post(
        f"/api/org/{org.json()['id']}/keys",
        json={"name": "k", "projects": ["web"], "scopes": ["sessions:read", "sessions:write"]},
        headers=ADMIN,
    )
    acme_web = {"Authorization": f"Bearer {minted.json()['key']['fullKey']}"}
    assert (
        await put(api, "web", {"resolvedProfile": PROFILE}, headers=acme_web)
    ).status_code == 200
    assert (
        await put(api, "api", {"resolvedProfile": PROFILE}, headers=acme_web)
    ).status_code == 403
    # The default organisation's project of the same name is another project.
    mine = await api.get("/api/v1/projects/web/defaults", headers=ADMIN)
    assert mine.json()["resolvedProfile"] is None
    theirs = await api.get("/api/v1/projects/web/defaults?orgId=acme", headers=ADMIN)
    assert theirs.json()["resolvedProfile"] == PROFILE
    other = await api.get("/api/v1/projects/web/defaults?orgId=org_default", headers=acme_web)
    assert other.status_code == 403


async def test_bad_defaults_name_the_field_and_change_nothing(api: httpx.AsyncClient) -> None:
    for body, field in (
        ({"resolvedProfile": {"provider": 3}}, "provider"),
        ({"resolvedProfile": {"nope": "x"}}, "nope"),
        ({"kits": {}}, "kits"),
        ({"modelProfile": "gpt"}, "modelProfile"),
    ):
        reply = await put(api, "web", body, headers=ADMIN)
        assert reply.status_code == 400 and field in reply.json()["message"], reply.text
    shown = (await api.get("/api/v1/projects/web/defaults", headers=ADMIN)).json()
    assert shown["resolvedProfile"] is None and shown["modelProfile"] is None
