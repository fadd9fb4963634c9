"""Veryfront runs in-process (manual clock), on SQLite and PostgreSQL: admission, AG-UI event
append with its cursor, limits and exact `detail` strings, completion, and the lease-loss path
(expiry, reaper, re-claim, and the old holder's writes refused)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from shopfloor.clock import ManualClock
from shopfloor.service.dispatch import Dispatcher
from shopfloor.service.errors import LeaseNotHeld
from shopfloor.service.runs import RunService
from tests.veryfront.helpers import (
    ADMIN,
    KIND,
    PROJECT,
    admit,
    append,
    bearer,
    claim,
    register,
    text_events,
)


def error(reply: httpx.Response, status: int) -> str:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"detail", "error"}
    detail: str = body["detail"]
    return detail


def dispatcher(api: httpx.AsyncClient) -> Dispatcher:
    d: Dispatcher = api.app.state.services.dispatcher  # type: ignore[attr-defined]
    return d


async def leased_run(api: httpx.AsyncClient, seconds: int = 30) -> tuple[str, str, dict[str, Any]]:
    wid, token = await register(api, f"k-{uuid.uuid4().hex[:6]}")
    worker_key = (await api.post(f"/agent-workers/workers/{wid}/heartbeat", headers=ADMIN)).json()[
        "worker"
    ]["worker_key"]
    await admit(api, worker_key)
    run = await claim(api, wid, token, seconds)
    assert run is not None
    return wid, token, run


async def read(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    reply = await api.get(f"/runs/{run_id}", headers=ADMIN)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


# -- admission --


async def test_admission_honours_idempotency_key_and_caller_run_id(
    api: httpx.AsyncClient,
) -> None:
    first = await admit(api, "k", headers={"Idempotency-Key": "abc"})
    again = await admit(api, "k", headers={"Idempotency-Key": "abc"}, text="different")
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["run_id"] == first["run_id"] and again["id"] == first["run_id"]
    named = await admit(api, "k", run_id="run_mine-1")
    assert named["run_id"] == "run_mine-1"
    assert (await admit(api, "k", run_id="run_mine-1"))["duplicate"] is True
    sessions = (await api.get("/api/v1/sessions", headers=ADMIN)).json()["sessions"]
    assert len(sessions) == 2


async def test_admission_keeps_conversation_and_target(api: httpx.AsyncClient) -> None:
    conversation = str(uuid.uuid4())
    admitted = await admit(
        api, "k", conversation_id=conversation, target={"type": "agent", "id": "writer"}
    )
    assert admitted["run"]["conversation_id"] == conversation
    assert admitted["run"]["agent_id"] == "writer"
    projection = await api.get(
        f"/conversations/{conversation}/runs/{admitted['run_id']}", headers=ADMIN
    )
    assert projection.json()["status"] == "pending"
    wrong = await api.get(f"/conversations/{uuid.uuid4()}/runs/{admitted['run_id']}", headers=ADMIN)
    assert error(wrong, 404) == "Run not found"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"project_id": PROJECT}, "config.agent_admission is required"),
        (
            {"project_id": PROJECT, "config": {"agent_admission": {"mode": "hosted"}}},
            'config.agent_admission.mode must be "worker"',
        ),
        (
            {"project_id": PROJECT, "config": {"agent_admission": {"mode": "worker"}}},
            "config.agent_admission.implementation_kind is required",
        ),
        (
            {
                "project_id": PROJECT,
                "config": {"agent_admission": {"mode": "worker", "implementation_kind": KIND}},
            },
            "config.agent_admission.worker_key is required",
        ),
        (
            {
                "config": {
                    "agent_admission": {
                        "mode": "worker",
                        "implementation_kind": KIND,
                        "worker_key": "k",
                    }
                }
            },
            "project_id is required (a project UUID or slug)",
        ),
        (
            {
                "project_id": PROJECT,
                "conversation_id": "nope",
                "config": {
                    "agent_admission": {
                        "mode": "worker",
                        "implementation_kind": KIND,
                        "worker_key": "k",
                    }
                },
            },
            "conversation_id must be a UUID",
        ),
        (
            {
                "project_id": PROJECT,
                "request_snapshot": {"messages": [{"id": "m", "role": "user", "parts": [{}]}]},
                "config": {
                    "agent_admission": {
                        "mode": "worker",
                        "implementation_kind": KIND,
                        "worker_key": "k",
                    }
                },
            },
            "request_snapshot.messages[0].parts must be an array of objects with a string type",
        ),
        (
            {"project_id": PROJECT, "kind": "agent", "request": {"implementation_kind": "a b"}},
            "request.implementation_kind must be 1-64 characters of A-Z a-z 0-9 _ -",
        ),
        (
            {"project_id": PROJECT, "kind": "job", "request": {}},
            "kind must be one of: agent, task, workflow, eval",
        ),
    ],
)
async def test_admission_rejects_bad_fields_by_name(
    api: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    assert error(await api.post("/runs", headers=ADMIN, json=body), 400) == detail
    assert (await api.get("/api/v1/sessions", headers=ADMIN)).json()["sessions"] == []


async def test_admission_needs_a_project_token_for_that_project(api: httpx.AsyncClient) -> None:
    body = {
        "project_id": PROJECT,
        "config": {
            "agent_admission": {"mode": "worker", "implementation_kind": KIND, "worker_key": "k"}
        },
    }
    assert error(await api.post("/runs", json=body), 401) == "Invalid or missing API key"
    minted = await api.post("/api/v1/registration-tokens", headers=ADMIN, json={"project": "x"})
    scoped = bearer(minted.json()["token"])
    reply = await api.post("/runs", headers=scoped, json=body)
    assert error(reply, 403) == "Token is not valid for this project"
    # A project-scoped token names the project when the body does not.
    del body["project_id"]
    minted = await api.post("/api/v1/registration-tokens", headers=ADMIN, json={"project": PROJECT})
    reply = await api.post("/runs", headers=bearer(minted.json()["token"]), json=body)
    assert reply.status_code == 202


# -- events --


async def test_append_advances_both_cursors_and_reads_back(api: httpx.AsyncClient) -> None:
    _, _, run = await leased_run(api)
    reply = await append(api, run, text_events(3), expected_previous_external_event_sequence=0)
    assert reply.status_code == 200
    body = reply.json()
    assert (body["appended_count"], body["latest_event_id"]) == (3, 3)
    assert body["latest_external_event_sequence"] == 3
    assert body["run"]["latest_external_event_sequence"] == 3
    assert body["run"]["conversation_id"] == run["conversation_id"]
    reply = await append(
        api,
        run,
        [{"type": "STEP_STARTED", "stepName": "step-1"}],
        expected_previous_external_event_sequence=3,
        expected_previous_event_id=3,
    )
    assert reply.json()["latest_event_id"] == 4
    events = (await api.get(f"/runs/{run['run_id']}/events", headers=ADMIN)).json()
    assert [e["event_id"] for e in events["data"]] == [1, 2, 3, 4]
    assert events["data"][3]["payload"] == {"type": "STEP_STARTED", "stepName": "step-1"}
    assert events["data"][3]["event_type"] == "STEP_STARTED"
    path = f"/runs/{run['run_id']}/events?after_event_id=2&limit=1"
    page = (await api.get(path, headers=ADMIN)).json()
    assert [e["event_id"] for e in page["data"]] == [3]
    assert page["page_info"] == {"self": "2", "first": None, "next": "3", "prev": "1"}
    projection = await api.get(
        f"/conversations/{run['conversation_id']}/runs/{run['run_id']}", headers=ADMIN
    )
    assert projection.json()["latest_external_event_sequence"] == 4


async def test_cursor_mismatch_has_the_exact_detail_and_writes_nothing(
    api: httpx.AsyncClient,
) -> None:
    _, _, run = await leased_run(api)
    await append(api, run, text_events(2))
    reply = await append(api, run, text_events(1), expected_previous_external_event_sequence=1)
    assert error(reply, 400) == "External run event cursor mismatch"
    reply = await append(api, run, text_events(1), expected_previous_event_id=0)
    assert error(reply, 400) == "Run event cursor mismatch"
    assert (await read(api, run["run_id"]))["latest_external_event_sequence"] == 2


@pytest.mark.parametrize(
    ("events", "detail"),
    [
        ([], "events must be an array of 1-100 events"),
        ([{"type": "CUSTOM"}] * 101, "events must be an array of 1-100 events"),
        ("CUSTOM", "events must be an array of 1-100 events"),
        ([{"type": "CUSTOM"}, 7], "events[1] must be an object"),
        ([{"name": "x"}], "events[0].type must be a string of 1-64 characters"),
        (
            [{"type": "CUSTOM"}, {"type": "CUSTOM", "value": "x" * (240 * 1024)}],
            "events[1] payload must be less than 240 KiB",
        ),
    ],
)
async def test_append_limits(api: httpx.AsyncClient, events: Any, detail: str) -> None:
    _, _, run = await leased_run(api)
    assert error(await append(api, run, events), 400) == detail
    assert (await read(api, run["run_id"]))["latest_event_id"] == 0


async def test_an_event_just_under_240_kib_is_accepted(api: httpx.AsyncClient) -> None:
    _, _, run = await leased_run(api)
    event = {"type": "CUSTOM", "value": ""}
    overhead = len(json.dumps(event, separators=(",", ":")))
    event["value"] = "x" * (240 * 1024 - overhead)
    assert (await append(api, run, [event])).status_code == 200


async def test_a_request_over_10_mib_is_refused(api: httpx.AsyncClient) -> None:
    _, _, run = await leased_run(api)
    chunk = {"type": "CUSTOM", "value": "x" * (200 * 1024)}
    reply = await append(api, run, [chunk] * 52)  # 52 x 200 KiB > 10 MiB
    detail = error(reply, 400)
    assert detail == "Request payload must be less than 10 MiB"
    assert "payload must be less than" in detail  # what the client treats as permanent
    assert (await read(api, run["run_id"]))["latest_event_id"] == 0


async def test_event_text_with_a_nul_character_round_trips(api: httpx.AsyncClient) -> None:
    _, _, run = await leased_run(api)
    event = {"type": "TEXT_MESSAGE_CONTENT", "delta": "a\x00b", "z": 1, "a": 2}
    assert (await append(api, run, [event])).status_code == 200
    stored = (await api.get(f"/runs/{run['run_id']}/events", headers=ADMIN)).json()["data"]
    assert stored[0]["payload"] == event
    assert list(stored[0]["payload"]) == ["type", "delta", "z", "a"]  # key order kept


async def test_nul_characters_and_odd_run_ids_are_400_not_500(api: httpx.AsyncClient) -> None:
    body = {
        "project_id": PROJECT,
        "input": "a\x00b",
        "config": {
            "agent_admission": {"mode": "worker", "implementation_kind": KIND, "worker_key": "k"}
        },
    }
    reply = await api.post("/runs", headers=ADMIN, json=body)
    assert error(reply, 400) == "Request body must not contain the NUL character (\\u0000)"
    reply = await api.get("/runs/run%00x", headers=ADMIN)  # refused for every protocol
    assert error(reply, 400) == "The URL must not contain the NUL character (%00)"
    reply = await api.get("/runs/run x", headers=ADMIN)
    assert error(reply, 400) == "run_id must be 1-128 characters of A-Z a-z 0-9 _ . : -"
    _, _, run = await leased_run(api)
    reply = await append(api, run, [{"type": "A\x00"}])
    assert error(reply, 400) == "events[0].type must be a string of 1-64 characters"


async def test_append_to_unknown_run_is_404(api: httpx.AsyncClient) -> None:
    reply = await append(
        api, {"conversation_id": str(uuid.uuid4()), "run_id": "run_nope"}, text_events(1)
    )
    assert error(reply, 404) == "Run not found"


# -- completion --


async def test_complete_is_idempotent_and_ends_appends(api: httpx.AsyncClient) -> None:
    _, _, run = await leased_run(api)
    path = f"/runs/{run['run_id']}/complete"
    reply = await api.post(
        path,
        headers=ADMIN,
        json={"status": "completed", "metadata": {"model": "m", "inputTokens": 5}},
    )
    assert reply.status_code == 200
    body = reply.json()
    assert body["completed"] is True
    assert (body["run"]["status"], body["run"]["lease_owner"]) == ("completed", None)
    again = await api.post(path, headers=ADMIN, json={"status": "completed"})
    assert again.status_code == 200 and again.json()["run"]["status"] == "completed"
    other = await api.post(path, headers=ADMIN, json={"status": "failed"})
    assert error(other, 409) == "Run is already finished with another status"
    late = await append(api, run, text_events(1))
    assert error(late, 400) == "Cannot append external events to a terminal run"
    session = (await api.get(f"/api/v1/sessions/{run['session_id']}", headers=ADMIN)).json()
    assert session["status"] == "completed"


@pytest.mark.parametrize(("status", "wire"), [("failed", "failed"), ("cancelled", "cancelled")])
async def test_complete_failed_and_cancelled(
    api: httpx.AsyncClient, status: str, wire: str
) -> None:
    _, _, run = await leased_run(api)
    reply = await api.post(
        f"/runs/{run['run_id']}/complete",
        headers=ADMIN,
        json={
            "status": status,
            "metadata": None,
            "terminal_error_code": "RUNTIME_FAILED",
            "terminal_error_message": "boom",
        },
    )
    assert reply.json()["run"]["status"] == wire
    stored = await read(api, run["run_id"])
    assert (stored["terminal_error_code"], stored["terminal_error_message"]) == (
        "RUNTIME_FAILED",
        "boom",
    )


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "status must be one of: completed, failed, cancelled"),
        ({"status": "waiting"}, "status must be one of: completed, failed, cancelled"),
        (
            {"status": "failed", "terminal_error_code": 3},
            "terminal_error_code must be a string of 1-200 characters",
        ),
        ({"status": "completed", "metadata": []}, "metadata must be an object"),
    ],
)
async def test_complete_rejects_bad_fields(
    api: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    _, _, run = await leased_run(api)
    reply = await api.post(f"/runs/{run['run_id']}/complete", headers=ADMIN, json=body)
    assert error(reply, 400) == detail
    assert (await read(api, run["run_id"]))["status"] == "running"


async def test_a_queued_run_can_be_cancelled_but_not_completed(api: httpx.AsyncClient) -> None:
    admitted = await admit(api, "k")
    path = f"/runs/{admitted['run_id']}/complete"
    reply = await api.post(path, headers=ADMIN, json={"status": "completed"})
    assert error(reply, 409) == "Run lease is not held; claim the run again"
    reply = await api.post(path, headers=ADMIN, json={"status": "cancelled"})
    assert reply.json()["run"]["status"] == "cancelled"
    wid, token = await register(api, "k")
    assert await claim(api, wid, token) is None


# -- lease loss --


async def test_expired_lease_refuses_the_old_holder_and_requeues_the_run(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    wid, token, run = await leased_run(api, seconds=10)
    run_id = run["run_id"]
    await append(api, run, text_events(2))
    clock.advance(11)  # the lease lapses; nobody has reaped it yet

    renew = await api.post(
        f"/agent-workers/workers/{wid}/runs/{run_id}/lease",
        headers=bearer(token),
        json={"lease_duration_seconds": 30},
    )
    assert renew.json() == {"run": None}
    refused = "Run lease is not held; claim the run again"
    assert error(await append(api, run, text_events(1)), 409) == refused
    complete = await api.post(f"/runs/{run_id}/complete", headers=ADMIN, json={"status": "failed"})
    assert error(complete, 409) == refused
    session = await api.put(
        f"/agent-workers/workers/{wid}/runs/{run_id}/session",
        headers=bearer(token),
        json={"session_key": "s"},
    )
    assert error(session, 409) == refused

    report = await dispatcher(api).reap()
    assert run["session_id"] in report.requeued
    stored = await read(api, run_id)
    assert (stored["status"], stored["lease_owner"], stored["lease_expires_at"]) == (
        "pending",
        None,
        None,
    )
    assert stored["latest_external_event_sequence"] == 2  # events so far are kept

    again = await claim(api, wid, token, 30)
    assert again is not None and again["run_id"] == run_id
    assert again["lease_expires_at"] == "2026-01-01T00:00:41.000Z"
    ok = await append(api, again, text_events(1), expected_previous_external_event_sequence=2)
    assert ok.status_code == 200


async def test_after_another_worker_reclaims_the_old_holder_is_fenced(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    old_id, old_token = await register(api, "old")
    new_id, new_token = await register(api, "new")
    admitted = await admit(api, None)  # any worker of the kind may run it
    run = await claim(api, old_id, old_token, 5)
    assert run is not None
    clock.advance(6)
    await dispatcher(api).reap()
    taken = await claim(api, new_id, new_token, 60)
    assert taken is not None and taken["run_id"] == admitted["run_id"]
    assert taken["lease_owner"] == new_id

    renew = await api.post(
        f"/agent-workers/workers/{old_id}/runs/{run['run_id']}/lease",
        headers=bearer(old_token),
        json={"lease_duration_seconds": 30},
    )
    assert renew.json() == {"run": None}
    refused = "Run lease is not held; claim the run again"
    # With its own worker token the old holder is refused even though the lease is live.
    assert error(await append(api, run, text_events(1), token=old_token), 409) == refused
    complete = await api.post(
        f"/runs/{run['run_id']}/complete", headers=bearer(old_token), json={"status": "failed"}
    )
    assert error(complete, 409) == refused
    session = await api.put(
        f"/agent-workers/workers/{old_id}/runs/{run['run_id']}/session",
        headers=bearer(old_token),
        json={"session_key": "s"},
    )
    assert error(session, 409) == refused
    # The new holder works normally.
    assert (await append(api, taken, text_events(1), token=new_token)).status_code == 200
    done = await api.post(
        f"/runs/{run['run_id']}/complete", headers=bearer(new_token), json={"status": "completed"}
    )
    assert done.json()["run"]["status"] == "completed"


async def test_a_live_lease_is_not_reaped(api: httpx.AsyncClient, clock: ManualClock) -> None:
    wid, token, run = await leased_run(api, seconds=10)
    clock.advance(8)
    await api.post(
        f"/agent-workers/workers/{wid}/runs/{run['run_id']}/lease",
        headers=bearer(token),
        json={"lease_duration_seconds": 10},
    )
    clock.advance(8)  # 16 s after the claim, inside the renewed lease
    report = await dispatcher(api).reap()
    assert run["session_id"] not in report.requeued
    assert (await read(api, run["run_id"]))["lease_owner"] == wid


async def test_a_worker_declared_dead_is_requeued_and_comes_back_on_its_next_call(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    wid, token, run = await leased_run(api, seconds=300)
    clock.advance(301)  # past the worker TTL (300 s) and the lease
    report = await dispatcher(api).reap()
    assert wid in report.dead_workers and run["session_id"] in report.requeued
    beat = await api.post(f"/agent-workers/workers/{wid}/heartbeat", headers=bearer(token))
    assert beat.status_code == 200 and beat.json()["worker"]["status"] == "active"
    again = await claim(api, wid, token)
    assert again is not None and again["run_id"] == run["run_id"]


async def test_concurrent_claims_lease_a_run_to_exactly_one_worker(
    api: httpx.AsyncClient,
) -> None:
    workers = [await register(api, f"racer-{i}") for i in range(6)]
    admitted = await admit(api, None)
    results = await asyncio.gather(*(claim(api, wid, token) for wid, token in workers))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0]["run_id"] == admitted["run_id"]
    assert winners[0]["lease_owner"] in {wid for wid, _ in workers}


async def test_an_append_classified_on_a_read_from_before_a_reclaim_writes_nothing(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    """The route reads the run once and appends on that read; if the lease moved to another
    worker in between, the write's fence refuses it, and the second look says why."""
    old_id, old_token = await register(api, "old")
    new_id, new_token = await register(api, "new")
    await admit(api, None)
    run = await claim(api, old_id, old_token, 5)
    assert run is not None
    runs = RunService(dispatcher(api))
    stale = await runs.state(run["run_id"], run["conversation_id"])
    assert stale.session.worker_id == old_id
    clock.advance(6)
    await dispatcher(api).reap()
    taken = await claim(api, new_id, new_token, 60)
    assert taken is not None and taken["lease_owner"] == new_id
    with pytest.raises(LeaseNotHeld):
        await runs.append(
            run["run_id"],
            run["conversation_id"],
            text_events(2),
            expected_external_sequence=None,
            expected_event_id=None,
            worker_id=old_id,
            state=stale,
        )
    after = await runs.state(run["run_id"])
    assert after.run.latest_external_event_sequence == stale.run.latest_external_event_sequence
    assert await runs.events(run["run_id"], stale.run.latest_event_id, 100) == []
