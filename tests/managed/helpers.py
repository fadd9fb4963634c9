"""Helpers for managed-session tests over an httpx client (in-process or a real server)."""

from __future__ import annotations

from typing import Any

import httpx

from shopfloor.service.managed.turns import TurnRunner
from tests.environments.helpers import ADMIN, new_environment

__all__ = ["ADMIN", "new_environment"]

TOOLSET = {"type": "agent_toolset_20260401"}


def user_message(text: str) -> dict[str, Any]:
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def tool_result(event_id: str, output: str, is_error: bool = False) -> dict[str, Any]:
    return {
        "type": "user.tool_result",
        "tool_use_id": event_id,
        "is_error": is_error,
        "content": [{"type": "text", "text": output}],
    }


async def new_agent(
    api: httpx.AsyncClient,
    system: str,
    tools: list[dict[str, Any]] | None = None,
    headers: dict[str, str] = ADMIN,
    **fields: Any,
) -> dict[str, Any]:
    body = {
        "name": "tester",
        "model": "claude-test",
        "system": system,
        "tools": [TOOLSET] if tools is None else tools,
        **fields,
    }
    r = await api.post("/v1/agents", json=body, headers=headers)
    assert r.status_code == 200, r.text
    agent: dict[str, Any] = r.json()
    return agent


async def new_session(
    api: httpx.AsyncClient,
    agent_id: str,
    env_id: str,
    *first: str,
    headers: dict[str, str] = ADMIN,
    **fields: Any,
) -> dict[str, Any]:
    body = {
        "agent": agent_id,
        "environment_id": env_id,
        "initial_events": [user_message(t) for t in first],
        **fields,
    }
    r = await api.post("/v1/sessions", json=body, headers=headers)
    assert r.status_code == 200, r.text
    session: dict[str, Any] = r.json()
    return session


async def send(
    api: httpx.AsyncClient,
    session_id: str,
    *events: dict[str, Any],
    headers: dict[str, str] = ADMIN,
) -> httpx.Response:
    return await api.post(
        f"/v1/sessions/{session_id}/events", json={"events": list(events)}, headers=headers
    )


async def events_of(api: httpx.AsyncClient, session_id: str, **params: Any) -> list[dict[str, Any]]:
    """Every event of the session, following next_page."""
    out: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 1000, **params}
    while True:
        r = await api.get(f"/v1/sessions/{session_id}/events", params=query, headers=ADMIN)
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page["data"])
        if not page["next_page"]:
            return out
        query["page"] = page["next_page"]


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def turns_of(api: httpx.AsyncClient) -> TurnRunner:
    runner: TurnRunner = api.app.state.services.turns  # type: ignore[attr-defined]
    return runner


async def settle(api: httpx.AsyncClient) -> None:
    """Wait until the in-process app runs no model call."""
    await turns_of(api).idle()


def pending_calls(events: list[dict[str, Any]]) -> list[str]:
    """The event ids the last requires_action idle lists."""
    idles = [e for e in events if e["type"] == "session.status_idle"]
    reason = idles[-1]["stop_reason"]
    assert reason["type"] == "requires_action", reason
    ids: list[str] = reason["event_ids"]
    return ids
