"""Every field of the seed's poll item (and of the Go daemon's PollWorkItem) can be set when a
session is queued, and is delivered with its name and type by the poll, the legacy /claim and
the operator's session view; inbox messages say who sent them (issue 28)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.agentfactory.helpers import ADMIN, WORKER, enqueue, poll, register

FIELDS: dict[str, Any] = {
    "sourceSessionId": "sess_parent",
    "providerSessionId": "prov-123",
    "kits": {"python": {"version": "3.11"}, "enabled": ["lint", "test"]},
    "ref": "refs/heads/main",
    "branch": "eng-1-fix-login",
    "env": {"FEATURE_FLAG": "on", "LOG_LEVEL": "debug"},
    "maxDurationSeconds": 1800,
    "resources": {"vCpu": 2, "memoryMb": 4096},
    "resolvedProfile": {
        "provider": "claude",
        "runner": "native",
        "model": "claude-sonnet-4",
        "effort": "high",
        "credentialId": "cred-1",
        "providerConfig": {"temperature": 0.2},
    },
    "modelProfile": {"id": "mp-1", "providerId": "anthropic", "model": "claude-x", "tier": 2},
    "mentionContext": "@agent please look",
    "parentContext": "the parent issue",
    "stagePrompt": "Stage 2: write the tests",
    "stageId": "stage-2",
    "stageBudget": {"maxCostUsd": 5, "maxTurns": 40},
    "stageLifecycle": "running",
    "stageSourceEventId": "evt-9",
}


async def test_every_field_round_trips_through_poll_claim_and_view(
    api: httpx.AsyncClient,
) -> None:
    queued = await enqueue(api, **FIELDS)
    sid = queued["sessionId"]
    assert {k: queued["workItem"][k] for k in FIELDS} == FIELDS
    view = (await api.get(f"/api/v1/sessions/{sid}", headers=ADMIN)).json()
    assert {k: view["workItem"][k] for k in FIELDS} == FIELDS
    worker = await register(api)
    (item,) = (await poll(api, worker))["work"]
    assert {k: item[k] for k in FIELDS} == FIELDS
    assert item["sessionId"] == sid and isinstance(item["queuedAt"], int)


async def test_the_legacy_claim_delivers_the_same_item(api: httpx.AsyncClient) -> None:
    sid = (await enqueue(api, **FIELDS))["sessionId"]
    worker = await register(api)
    reply = await api.post(f"/api/sessions/{sid}/claim", json={"workerId": worker}, headers=WORKER)
    assert reply.json()["claimed"] is True
    assert {k: reply.json()["work"][k] for k in FIELDS} == FIELDS


async def test_fields_left_out_are_not_delivered(api: httpx.AsyncClient) -> None:
    await enqueue(api)
    (item,) = (await poll(api, await register(api)))["work"]
    assert not set(FIELDS) & set(item)


BAD: list[tuple[dict[str, Any], str]] = [
    ({"kits": []}, "kits: Input should be a valid dictionary"),
    ({"kits": {"blob": "x" * 70_000}}, "kits: Value error, must be at most 65536 bytes as JSON"),
    ({"env": {"1BAD": "x"}}, "env.1BAD.[key]: String should match pattern"),
    ({"env": {"OK": 3}}, "env.OK: Input should be a valid string"),
    ({"maxDurationSeconds": 0}, "maxDurationSeconds: Input should be greater than or equal to 1"),
    ({"maxDurationSeconds": "60"}, "maxDurationSeconds: Input should be a valid integer"),
    ({"resources": {"vCpu": -1}}, "resources.vCpu: Input should be greater than 0"),
    ({"resources": {"gpus": 1}}, "resources.gpus: Extra inputs are not permitted"),
    ({"resolvedProfile": {"model": 5}}, "resolvedProfile.model: Input should be a valid string"),
    ({"modelProfile": "mp-1"}, "modelProfile: Input should be a valid dictionary"),
    ({"sourceSessionId": ""}, "sourceSessionId: String should have at least 1 character"),
    ({"stageBudget": "lots"}, "stageBudget"),
    ({"kits": {"n": 2**70}}, "kits.n must be an integer between"),
]


@pytest.mark.parametrize(("fields", "message"), BAD)
async def test_bad_values_are_a_400_naming_the_field(
    api: httpx.AsyncClient, fields: dict[str, Any], message: str
) -> None:
    body = {"prompt": "p", **fields}
    reply = await api.post("/api/v1/sessions", json=body, headers=ADMIN)
    assert reply.status_code == 400, reply.text
    assert reply.json()["message"].startswith(message)
    assert (await api.get("/api/v1/sessions", headers=ADMIN)).json()["sessions"] == []


async def test_inbox_messages_say_who_sent_them(api: httpx.AsyncClient) -> None:
    sid = (await enqueue(api))["sessionId"]
    worker = await register(api)
    await poll(api, worker)
    await api.post(
        f"/api/v1/sessions/{sid}/prompt",
        json={"text": "also the changelog", "userId": "u-42", "userName": "Ada"},
        headers=ADMIN,
    )
    await api.post(f"/api/v1/sessions/{sid}/nudge", json={}, headers=ADMIN)
    messages = (await poll(api, worker))["inboxMessages"][sid]
    assert [(m["type"], m.get("userId"), m.get("userName")) for m in messages] == [
        ("directive", "u-42", "Ada"),
        ("nudge", "admin", None),  # the admin key's own identity
    ]
