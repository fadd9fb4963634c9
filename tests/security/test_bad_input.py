"""Input that used to reach a 500 (issue 16, item 7): JSON nested hundreds of levels deep,
integers beyond int64, non-finite numbers, and values of the wrong JSON type where a string
was compared with a table. Each is a 400 in its protocol's envelope naming the field, and
changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.agentfactory.helpers import ADMIN, WORKER, enqueue, poll, register
from tests.veryfront.helpers import admit

BIG = 2**64


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


async def state(api: httpx.AsyncClient) -> tuple[Any, Any]:
    sessions = (await api.get("/api/v1/sessions", headers=ADMIN)).json()
    workers = (await api.get("/api/v1/workers", headers=ADMIN)).json()
    return sessions, workers


@pytest.mark.parametrize("depth", [65, 400, 5000])
@pytest.mark.parametrize(
    ("path", "message_key", "auth"),
    [
        ("/api/workers/register", "message", WORKER),
        ("/v1/environments", "error", ADMIN),
        ("/runs", "detail", ADMIN),
    ],
)
async def test_deep_json_is_a_400(
    api: httpx.AsyncClient, depth: int, path: str, message_key: str, auth: dict[str, str]
) -> None:
    before = await state(api)
    reply = await api.post(
        path, content=nested(depth), headers={**auth, "Content-Type": "application/json"}
    )
    assert reply.status_code == 400, reply.text
    body = reply.json()
    message = body["error"]["message"] if message_key == "error" else body[message_key]
    assert message in ("Request body is nested deeper than 64 levels", "Invalid JSON body")
    assert await state(api) == before


async def test_deep_json_in_an_operator_body_is_a_400(api: httpx.AsyncClient) -> None:
    labels = "[" * 400 + "]" * 400
    raw = '{"prompt": "x", "labels": ' + labels + "}"
    before = await state(api)
    reply = await api.post(
        "/api/v1/sessions", content=raw, headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["message"] == "Request body is nested deeper than 64 levels"
    assert await state(api) == before


async def test_integers_beyond_int64_are_a_400_naming_the_field(api: httpx.AsyncClient) -> None:
    before = await state(api)
    reply = await api.post(
        "/api/workers/register", json={"hostname": "h", "capacity": BIG}, headers=WORKER
    )
    assert reply.status_code == 400
    assert reply.json()["message"].startswith("capacity must be")
    assert await state(api) == before


async def test_capacity_and_active_count_fit_the_database(api: httpx.AsyncClient) -> None:
    too_many = await api.post(
        "/api/workers/register", json={"hostname": "h", "capacity": 2**40}, headers=WORKER
    )
    assert too_many.status_code == 400
    assert too_many.json()["message"] == "capacity must be at most 10000"
    worker = await register(api)
    for count in (2**40, BIG):
        reply = await api.post(
            f"/api/workers/{worker}/heartbeat", json={"activeCount": count}, headers=WORKER
        )
        assert reply.status_code == 400
        assert reply.json()["message"].startswith("activeCount must be")


async def test_token_counts_beyond_int64_change_nothing(api: httpx.AsyncClient) -> None:
    worker = await register(api)
    session = (await enqueue(api))["sessionId"]
    await poll(api, worker)
    before = await state(api)
    reply = await api.post(
        f"/api/sessions/{session}/status",
        json={"workerId": worker, "status": "completed", "inputTokens": BIG},
        headers=WORKER,
    )
    assert reply.status_code == 400
    assert reply.json()["message"] == (
        "inputTokens must be an integer between -9223372036854775808 and 9223372036854775807"
    )
    assert await state(api) == before


@pytest.mark.parametrize("raw", ['{"capacity": 1e999, "hostname": "h"}', '{"x": NaN}'])
async def test_non_finite_numbers_are_a_400(api: httpx.AsyncClient, raw: str) -> None:
    reply = await api.post(
        "/api/workers/register",
        content=raw,
        headers={**WORKER, "Content-Type": "application/json"},
    )
    assert reply.status_code == 400
    assert reply.json()["message"].endswith("must be a finite number")


async def test_query_integers_beyond_int64_are_a_400(api: httpx.AsyncClient) -> None:
    session = (await enqueue(api))["sessionId"]
    timeline = await api.get(
        f"/api/v1/sessions/{session}/activity", params={"after": str(BIG)}, headers=ADMIN
    )
    assert timeline.status_code == 400
    assert timeline.json()["message"].startswith("after:")
    env = await api.post("/v1/environments", json={"name": "e"}, headers=ADMIN)
    assert env.status_code == 200, env.text
    poll_reply = await api.get(
        f"/v1/environments/{env.json()['id']}/work/poll",
        params={"reclaim_older_than_ms": str(BIG)},
        headers=ADMIN,
    )
    assert poll_reply.status_code == 400
    assert poll_reply.json()["error"]["message"].startswith("reclaim_older_than_ms must be")


@pytest.mark.parametrize("status", [[], {}, None, 3])
async def test_completing_a_run_with_a_status_of_the_wrong_type(
    api: httpx.AsyncClient, status: Any
) -> None:
    run = await admit(api, None)
    before = (await api.get(f"/runs/{run['run_id']}", headers=ADMIN)).json()
    body = {} if status is None else {"status": status}
    reply = await api.post(f"/runs/{run['run_id']}/complete", json=body, headers=ADMIN)
    assert reply.status_code == 400
    assert reply.json()["detail"] == "status must be one of: completed, failed, cancelled"
    assert (await api.get(f"/runs/{run['run_id']}", headers=ADMIN)).json() == before


async def test_a_nul_in_an_issue_proxy_argument_is_refused(api: httpx.AsyncClient) -> None:
    await enqueue(api, issueIdentifier="ENG-77")
    reply = await api.post(
        "/api/issue-tracker-proxy",
        json={"method": "createComment", "args": ["ENG-77", "bad\x00comment"]},
        headers=WORKER,
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "INVALID_ARGS"
