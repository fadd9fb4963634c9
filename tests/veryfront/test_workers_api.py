"""Veryfront agent-worker routes in-process (manual clock), on SQLite and PostgreSQL:
registration, tokens, heartbeat, claim matching, lease renewal, sessions, retirement, and the
documented validation errors with the `{"detail", "error"}` body the npm client surfaces."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from shopfloor.clock import ManualClock
from shopfloor.service.runs import project_ref
from tests.conftest import ADMIN_KEY, WORKER_KEY
from tests.veryfront.helpers import (
    ADMIN,
    KIND,
    PROJECT,
    admit,
    bearer,
    claim,
    register,
)


def error(reply: httpx.Response, status: int) -> str:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"detail", "error"}
    detail: str = body["detail"]
    return detail


async def test_register_returns_201_with_uuid4_ids_and_a_worker_token(
    api: httpx.AsyncClient,
) -> None:
    reply = await api.post(
        f"/agent-workers/projects/{PROJECT}/workers",
        headers=ADMIN,
        json={
            "implementation_kind": "my_kind-1",
            "implementation_display_name": "My kind",
            "worker_key": "host-1.example:a_b-c",
            "display_name": "Worker one",
            "metadata": {"region": "eu"},
        },
    )
    assert reply.status_code == 201
    body = reply.json()
    worker = body["worker"]
    assert uuid.UUID(worker["id"]).version == 4
    assert worker["project_id"] == project_ref(PROJECT).id
    assert uuid.UUID(worker["project_id"]).variant == uuid.RFC_4122
    assert worker["implementation_kind"] == "my_kind-1"
    assert worker["worker_key"] == "host-1.example:a_b-c"
    assert worker["display_name"] == "Worker one"
    assert worker["metadata"] == {"region": "eu"}
    assert worker["status"] == "active"
    assert worker["last_heartbeat_at"] == "2026-01-01T00:00:00.000Z"
    assert isinstance(body["token"], str) and body["token"].startswith("vfw_")


async def test_longest_kind_and_worker_key_still_claim(api: httpx.AsyncClient) -> None:
    kind, key = "k" * 64, "w" * 127 + "."
    wid, token = await register(api, key, kind=kind)
    other, other_token = await register(api, "w" * 127 + ":", kind=kind)
    admitted = await admit(api, key, kind=kind)
    assert await claim(api, other, other_token) is None
    run = await claim(api, wid, token)
    assert run is not None and run["run_id"] == admitted["run_id"]


async def test_a_project_referenced_by_slug_or_by_its_uuid_is_one_project(
    api: httpx.AsyncClient,
) -> None:
    wid, token = await register(api, "k", project=project_ref(PROJECT).id)
    await admit(api, "k", project=PROJECT)
    run = await claim(api, wid, token)
    assert run is not None and run["project_id"] == project_ref(PROJECT).id


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"worker_key": "k"}, "implementation_kind is required"),
        (
            {"implementation_kind": "has space", "worker_key": "k"},
            "implementation_kind must be 1-64 characters of A-Z a-z 0-9 _ -",
        ),
        (
            {"implementation_kind": "k" * 65, "worker_key": "k"},
            "implementation_kind must be 1-64 characters of A-Z a-z 0-9 _ -",
        ),
        ({"implementation_kind": "k"}, "worker_key is required"),
        (
            {"implementation_kind": "k", "worker_key": "a/b"},
            "worker_key must be 1-128 characters of A-Z a-z 0-9 _ . : -",
        ),
        (
            {"implementation_kind": "k", "worker_key": "k" * 129},
            "worker_key must be 1-128 characters of A-Z a-z 0-9 _ . : -",
        ),
        (
            {"implementation_kind": "k", "worker_key": "k", "display_name": ""},
            "display_name must be a string of 1-128 characters",
        ),
        (
            {"implementation_kind": "k", "worker_key": "k", "implementation_display_name": 5},
            "implementation_display_name must be a string of 1-128 characters",
        ),
        (
            {"implementation_kind": "k", "worker_key": "k", "metadata": [1]},
            "metadata must be an object",
        ),
    ],
)
async def test_register_rejects_bad_fields_by_name(
    api: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    reply = await api.post(f"/agent-workers/projects/{PROJECT}/workers", headers=ADMIN, json=body)
    assert error(reply, 400) == detail
    workers = (await api.get("/api/v1/workers", headers=ADMIN)).json()
    assert workers == []  # nothing was written


async def test_register_rejects_a_bad_project_reference_and_bad_json(
    api: httpx.AsyncClient,
) -> None:
    reply = await api.post(
        "/agent-workers/projects/a%20b/workers",
        headers=ADMIN,
        json={"implementation_kind": "k", "worker_key": "k"},
    )
    assert error(reply, 400).startswith("project_reference must be a project UUID or slug")
    reply = await api.post(
        f"/agent-workers/projects/{PROJECT}/workers", headers=ADMIN, content=b"{nope"
    )
    assert error(reply, 400) == "Invalid JSON body"


async def test_tokens_project_scope_and_worker_scope(api: httpx.AsyncClient) -> None:
    body = {"implementation_kind": KIND, "worker_key": "k1"}
    path = f"/agent-workers/projects/{PROJECT}/workers"
    assert error(await api.post(path, json=body), 401) == "Invalid or missing API key"
    other = await api.post("/api/v1/registration-tokens", headers=ADMIN, json={"project": "other"})
    scoped = bearer(other.json()["token"])
    assert error(await api.post(path, headers=scoped, json=body), 403) == (
        "Token is not valid for this project"
    )
    # The static worker key acts as a project token too.
    reply = await api.post(path, headers=bearer(WORKER_KEY), json=body)
    assert reply.status_code == 201
    wid, token = reply.json()["worker"]["id"], reply.json()["token"]
    other_id, other_token = await register(api, "k2")
    beat = f"/agent-workers/workers/{wid}/heartbeat"
    assert (await api.post(beat, headers=bearer(token))).status_code == 200
    assert error(await api.post(beat, headers=bearer(other_token)), 403) == (
        "Token is not valid for this worker"
    )
    assert error(await api.post(beat, headers=scoped), 403) == (
        "Token is not valid for this project"
    )
    # A worker token cannot register workers or admit runs.
    assert error(await api.post(path, headers=bearer(token), json=body), 403) == (
        "Register a worker with a project token"
    )
    assert other_id != wid


async def test_reregistering_a_key_revives_the_worker_with_a_new_token(
    api: httpx.AsyncClient,
) -> None:
    wid, old_token = await register(api, "same-key")
    assert (await api.delete(f"/agent-workers/workers/{wid}", headers=ADMIN)).status_code == 200
    again, new_token = await register(api, "same-key")
    assert again == wid and new_token != old_token
    beat = f"/agent-workers/workers/{wid}/heartbeat"
    assert error(await api.post(beat, headers=bearer(old_token)), 401) == (
        "Invalid or missing API key"
    )
    reply = await api.post(beat, headers=bearer(new_token))
    assert reply.json()["worker"]["status"] == "active"


async def test_heartbeat_takes_an_empty_json_body_and_moves_last_heartbeat(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    wid, token = await register(api, "k")
    clock.advance(7)
    reply = await api.post(
        f"/agent-workers/workers/{wid}/heartbeat",
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert reply.status_code == 200
    assert reply.json()["worker"]["last_heartbeat_at"] == "2026-01-01T00:00:07.000Z"
    unknown = f"/agent-workers/workers/{uuid.uuid4()}/heartbeat"
    assert error(await api.post(unknown, headers=ADMIN), 404) == "Worker not found"
    bad = "/agent-workers/workers/not-a-uuid/heartbeat"
    assert error(await api.post(bad, headers=ADMIN), 400) == "worker_id must be a UUID"


@pytest.mark.parametrize("seconds", [4, 301, 0, -5, 30.5, "30", True, None])
async def test_lease_duration_must_be_an_integer_from_5_to_300(
    api: httpx.AsyncClient, seconds: Any
) -> None:
    wid, token = await register(api, "k")
    await admit(api, "k")
    body = {} if seconds is None else {"lease_duration_seconds": seconds}
    reply = await api.post(f"/agent-workers/workers/{wid}/claim", headers=bearer(token), json=body)
    expected = (
        "lease_duration_seconds is required"
        if seconds is None
        else "lease_duration_seconds must be an integer between 5 and 300"
    )
    assert error(reply, 400) == expected
    assert await claim(api, wid, token, 5) is not None  # the bad claim took nothing


async def test_claim_returns_null_run_when_nothing_is_claimable(api: httpx.AsyncClient) -> None:
    wid, token = await register(api, "k")
    reply = await api.post(
        f"/agent-workers/workers/{wid}/claim",
        headers=bearer(token),
        json={"lease_duration_seconds": 300},
    )
    assert reply.status_code == 200
    assert reply.json() == {"run": None}


async def test_claim_matches_implementation_kind_and_worker_key(api: httpx.AsyncClient) -> None:
    a_id, a_token = await register(api, "worker-a")
    b_id, b_token = await register(api, "worker-b")
    other_kind_id, other_kind_token = await register(api, "worker-a", kind="other-kind")
    for_a = await admit(api, "worker-a")
    assert await claim(api, b_id, b_token) is None
    assert await claim(api, other_kind_id, other_kind_token) is None
    got = await claim(api, a_id, a_token)
    assert got is not None and got["run_id"] == for_a["run_id"]
    # A run admitted without a worker key goes to any worker of its kind.
    any_worker = await admit(api, None)
    assert await claim(api, other_kind_id, other_kind_token) is None
    got = await claim(api, b_id, b_token)
    assert got is not None and got["run_id"] == any_worker["run_id"]


async def test_claimed_run_carries_the_snapshot_and_the_lease(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    wid, token = await register(api, "k")
    snapshot = {
        "messages": [
            {
                "id": "m1",
                "role": "user",
                "parts": [{"type": "text", "text": "Hi"}],
                "createdAt": "2026-01-01T00:00:00Z",
            }
        ],
        "tools": [{"name": "search", "description": "web search", "parameters": {}}],
        "context": [{"description": "tz", "value": "UTC"}],
        "forwardedProps": {"model": "m"},
    }
    admitted = await admit(api, "k", request_snapshot=snapshot)
    assert admitted["status"] == "pending" and admitted["run"]["lease_owner"] is None
    run = await claim(api, wid, token, 45)
    assert run is not None
    assert run["request_snapshot"] == snapshot
    assert run["status"] == "running"
    assert run["lease_owner"] == wid
    assert run["lease_expires_at"] == "2026-01-01T00:00:45.000Z"
    assert run["latest_event_id"] == 0 and run["latest_external_event_sequence"] == 0
    for name in ("project_id", "request_snapshot", "lease_owner", "lease_expires_at"):
        assert name in run  # nullable but required by the client's schema
    uuid.UUID(run["conversation_id"])
    uuid.UUID(run["message_id"])


async def test_lease_renewal_extends_only_for_the_holder(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    wid, token = await register(api, "k")
    await admit(api, None)
    other_id, other_token = await register(api, "k2")
    run = await claim(api, wid, token, 30)
    assert run is not None
    path = f"/agent-workers/workers/{wid}/runs/{run['run_id']}/lease"
    clock.advance(20)
    reply = await api.post(path, headers=bearer(token), json={"lease_duration_seconds": 60})
    assert reply.json()["run"]["lease_expires_at"] == "2026-01-01T00:01:20.000Z"
    other_path = f"/agent-workers/workers/{other_id}/runs/{run['run_id']}/lease"
    reply = await api.post(
        other_path, headers=bearer(other_token), json={"lease_duration_seconds": 60}
    )
    assert reply.json() == {"run": None}
    reply = await api.post(path, headers=bearer(token), json={"lease_duration_seconds": 3})
    assert error(reply, 400) == "lease_duration_seconds must be an integer between 5 and 300"
    missing = f"/agent-workers/workers/{wid}/runs/run_missing/lease"
    reply = await api.post(missing, headers=bearer(token), json={"lease_duration_seconds": 30})
    assert error(reply, 404) == "Run not found"


async def test_worker_session_put_upserts_and_ends(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    wid, token = await register(api, "k")
    await admit(api, "k")
    run = await claim(api, wid, token)
    assert run is not None
    path = f"/agent-workers/workers/{wid}/runs/{run['run_id']}/session"
    first = await api.put(
        path, headers=bearer(token), json={"session_key": "s-1", "metadata": {"pid": 1}}
    )
    assert first.status_code == 200
    session = first.json()["session"]
    assert uuid.UUID(session["id"]).version == 4
    assert (session["status"], session["worker_id"], session["ended_at"]) == ("active", wid, None)
    assert session["implementation_kind"] == KIND
    clock.advance(3)
    second = (
        await api.put(path, headers=bearer(token), json={"session_key": "s-1", "status": "failed"})
    ).json()["session"]
    assert second["id"] == session["id"]
    assert second["metadata"] == {"pid": 1}
    assert (second["status"], second["ended_at"]) == ("failed", "2026-01-01T00:00:03.000Z")
    claimed_again = (await api.get(f"/runs/{run['run_id']}", headers=ADMIN)).json()
    assert claimed_again["worker_session"]["id"] == session["id"]
    for body, detail in [
        ({}, "session_key must be a string of 1-512 characters"),
        ({"session_key": "x" * 513}, "session_key must be a string of 1-512 characters"),
        (
            {"session_key": "s", "status": "done"},
            "status must be one of: active, completed, failed, cancelled",
        ),
        ({"session_key": "s", "metadata": "x"}, "metadata must be an object"),
    ]:
        assert error(await api.put(path, headers=bearer(token), json=body), 400) == detail


async def test_delete_worker_requeues_its_runs(api: httpx.AsyncClient) -> None:
    wid, token = await register(api, "k")
    admitted = await admit(api, "k")
    assert await claim(api, wid, token) is not None
    reply = await api.delete(f"/agent-workers/workers/{wid}", headers=bearer(token))
    assert reply.status_code == 200
    body = reply.json()
    assert body["deleted"] is True and body["worker"]["status"] == "disabled"
    assert body["released_run_count"] == 1
    run = (await api.get(f"/runs/{admitted['run_id']}", headers=ADMIN)).json()
    assert (run["status"], run["lease_owner"]) == ("pending", None)
    claim_path = f"/agent-workers/workers/{wid}/claim"
    reply = await api.post(claim_path, headers=bearer(token), json={"lease_duration_seconds": 30})
    assert error(reply, 404) == "Worker not found"
    # It went back to the queue: the re-registered worker gets it again.
    again, new_token = await register(api, "k")
    got = await claim(api, again, new_token)
    assert got is not None and got["run_id"] == admitted["run_id"]


async def test_unknown_paths_under_the_prefixes_use_the_veryfront_body(
    api: httpx.AsyncClient,
) -> None:
    assert error(await api.get("/runs/x/nothing", headers=ADMIN), 404) == "Not Found"
    # Other protocols keep their own body.
    reply = await api.get("/api/v1/nothing", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert set(reply.json()) == {"error", "message"}
