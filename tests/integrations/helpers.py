"""Deliveries built as Linear and GitHub build them: the documented headers, an HMAC of the
exact bytes sent, and their payload shapes."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from shopfloor.service.webhook_signatures import sign
from tests.agentfactory.helpers import ADMIN

LINEAR_SECRET = "lin_wh_test_secret_0123456789"
GITHUB_SECRET = "gh_wh_test_secret_0123456789"


def linear_body(action: str, session_id: str, now_ms: int, **extra: Any) -> dict[str, Any]:
    issue = {
        "id": f"iss-{session_id}",
        "identifier": "ENG-42",
        "title": "Fix the login page",
        "description": "It breaks on Safari",
        "state": {"name": "Backlog", "type": "backlog"},
    }
    body: dict[str, Any] = {
        "type": "AgentSessionEvent",
        "action": action,
        "organizationId": "lin-org-1",
        "webhookId": "wh-1",
        "webhookTimestamp": now_ms,
        "agentSession": {"id": session_id, "issue": issue},
    }
    body.update(extra)
    return body


async def post_linear(
    api: httpx.AsyncClient,
    body: dict[str, Any],
    *,
    secret: str = LINEAR_SECRET,
    delivery: str | None = None,
    org: str | None = None,
    header: str = "linear-signature",
) -> httpx.Response:
    raw = json.dumps(body).encode()
    signature = sign("linear", secret, raw)["linear-signature"]
    headers = {
        "content-type": "application/json",
        header: signature,
        "linear-delivery": delivery or str(uuid.uuid4()),
        "linear-event": "AgentSessionEvent",
    }
    params = {"org": org} if org else None
    return await api.post(
        "/api/webhooks/ingest/linear", content=raw, headers=headers, params=params
    )


async def post_github(
    api: httpx.AsyncClient,
    event: str,
    body: dict[str, Any],
    *,
    secret: str = GITHUB_SECRET,
    delivery: str | None = None,
    path: str = "/api/webhooks/ingest/github",
) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {
        "content-type": "application/json",
        **sign("github", secret, raw),
        "x-github-delivery": delivery or str(uuid.uuid4()),
        "x-github-event": event,
    }
    return await api.post(path, content=raw, headers=headers)


async def settle(api: httpx.AsyncClient) -> None:
    """Wait for the processing the in-process server started after its answers."""
    await api.app.state.services.webhooks.settle()  # type: ignore[attr-defined]


async def sessions(api: httpx.AsyncClient, headers: dict[str, str] = ADMIN) -> list[dict[str, Any]]:
    reply = await api.get("/api/v1/sessions", headers=headers)
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()["sessions"]
    return found
