"""Tenants for the MCP and A2A tests: an organisation with a user key and a worker that holds
a session of a project (claimed through the AgentFactory protocol)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from tests.agentfactory.helpers import ADMIN


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Tenant:
    org_id: str
    key: dict[str, str]  # an organisation-wide user key
    worker_id: str
    worker: dict[str, str]  # the worker's runtime JWT


async def tenant(api: httpx.AsyncClient, slug: str) -> Tenant:
    reply = await api.post("/api/v1/orgs", json={"slug": slug}, headers=ADMIN)
    assert reply.status_code == 201, reply.text
    org_id = reply.json()["id"]
    minted = await api.post(f"/api/org/{slug}/keys", json={"name": "k"}, headers=ADMIN)
    key = bearer(minted.json()["key"]["fullKey"])
    tokens = await api.post("/api/v1/registration-tokens", json={"org": slug}, headers=ADMIN)
    registered = await api.post(
        "/api/workers/register",
        json={"hostname": slug, "capacity": 10},
        headers=bearer(tokens.json()["token"]),
    )
    assert registered.status_code == 201, registered.text
    found = registered.json()
    return Tenant(org_id, key, found["workerId"], bearer(found["runtimeToken"]))


async def held_session(api: httpx.AsyncClient, t: Tenant, project: str = "web") -> str:
    """A session of the project, claimed by the tenant's worker."""
    queued = await api.post(
        "/api/v1/sessions", json={"prompt": "work", "projectName": project}, headers=t.key
    )
    assert queued.status_code == 201, queued.text
    session_id: str = queued.json()["sessionId"]
    polled = await api.get(f"/api/workers/{t.worker_id}/poll", headers=t.worker)
    assert session_id in polled.json()["claimedSessionIds"], polled.text
    return session_id
