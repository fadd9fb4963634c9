"""The provider router (rensei-platform.md §1.3, §1.4, §2.7) and the phase metrics (§2.8):
rewards move Beta posteriors, Thompson sampling converges on the better provider, the public
metrics show an organisation its own arms only. Both databases."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopfloor.clock import ManualClock
from shopfloor.service.router import Feedback, Router
from shopfloor.store import Store
from shopfloor.store.records import SessionRecord
from tests.agentfactory.helpers import ADMIN
from tests.conftest import Backend, make_settings, running_app
from tests.platform.test_tenancy import bearer, key, new_org, queue


async def runtime_token(api: httpx.AsyncClient, org: str) -> tuple[str, dict[str, str]]:
    minted = await api.post(
        f"/api/org/{org}/keys",
        json={"name": "daemon", "keyType": "worker_registration"},
        headers=ADMIN,
    )
    registered = await api.post(
        "/api/workers/register",
        json={"hostname": "h", "capacity": 2},
        headers=bearer(minted.json()["key"]["fullKey"]),
    )
    assert registered.status_code == 201, registered.text
    return registered.json()["workerId"], bearer(registered.json()["runtimeToken"])


async def feedback(
    api: httpx.AsyncClient, sid: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await api.post(f"/api/sessions/{sid}/routing-feedback", json=body, headers=headers)


async def test_thompson_sampling_converges_on_the_better_provider(
    store: Store, clock: ManualClock
) -> None:
    world = random.Random(7)
    router = Router(store, clock, enabled=True, rng=random.Random(11))
    session = SessionRecord(
        id="s", queue="q", status="completed", priority=3, queued_at=0, created_at=0, updated_at=0
    )
    success = {"claude": 0.8, "codex": 0.3}
    picks = []
    for _ in range(150):
        choice = await router.select(session, "development", ["claude", "codex"])
        assert choice.provider is not None
        picks.append(choice.provider)
        reward = 1.0 if world.random() < success[choice.provider] else 0.0
        assert await router.observe(session, Feedback(choice.provider, "development", reward))
    arms = {p.provider: p for p in await store.posteriors(session.org_id, "development")}
    assert arms["claude"].alpha / (arms["claude"].alpha + arms["claude"].beta) > 0.65
    assert arms["codex"].alpha / (arms["codex"].alpha + arms["codex"].beta) < 0.5
    assert picks[-50:].count("claude") >= 40
    assert sum(p.total_observations for p in arms.values()) == 150


async def test_feedback_moves_the_posterior_seen_in_the_metrics(api: httpx.AsyncClient) -> None:
    await new_org(api, "a")
    await new_org(api, "b")
    sid = (await queue(api, ADMIN, orgId="a", projectName="web")).json()["sessionId"]
    _, worker_a = await runtime_token(api, "a")
    _, worker_b = await runtime_token(api, "b")
    body = {"provider": "claude", "workType": "development", "reward": 0.9, "taskCompleted": True}
    assert (await feedback(api, sid, worker_a, **body)).json() == {"recorded": True}
    assert (await feedback(api, sid, worker_a, **{**body, "reward": 0.2})).json()["recorded"]
    # Another organisation's worker: the session does not exist for it.
    refused = await feedback(api, sid, worker_b, **body)
    assert refused.status_code == 404
    choice = await api.post(
        f"/api/sessions/{sid}/routing-select",
        json={"workType": "development", "candidates": ["claude"]},
        headers=worker_b,
    )
    assert choice.status_code == 404
    metrics = (await api.get("/api/public/routing-metrics", headers=await key(api, "a"))).json()
    [arm] = metrics["posteriors"]
    assert (arm["alpha"], arm["beta"], arm["totalObservations"]) == (1.9, 1.8, 2)
    assert arm["expectedReward"] == round(1.9 / 3.7, 4)
    assert [d["reward"] for d in metrics["recentDecisions"]] == [0.2, 0.9]
    assert metrics["summary"]["routingEnabled"] is True
    assert metrics["summary"]["explorationRate"] == 0.1
    theirs = (await api.get("/api/public/routing-metrics", headers=await key(api, "b"))).json()
    assert theirs["posteriors"] == [] and theirs["recentDecisions"] == []


async def test_select_is_off_unless_enabled(
    api: httpx.AsyncClient, backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    await new_org(api, "a")
    sid = (await queue(api, ADMIN, orgId="a")).json()["sessionId"]
    _, worker = await runtime_token(api, "a")
    body = {"workType": "qa", "candidates": ["claude", "codex"]}
    off = await api.post(f"/api/sessions/{sid}/routing-select", json=body, headers=worker)
    assert off.json() == {
        "selectedProvider": None,
        "source": "disabled",
        "expectedReward": 0.0,
        "confidence": 0.0,
    }
    settings = make_settings(backend, tmp_path, routing_selector_enabled=True)
    async with running_app(settings, clock) as on:
        chosen = await on.post(f"/api/sessions/{sid}/routing-select", json=body, headers=worker)
        assert chosen.json()["selectedProvider"] in ("claude", "codex"), chosen.text
        assert chosen.json()["source"] in ("thompson", "exploration")
        empty = await on.post(
            f"/api/sessions/{sid}/routing-select",
            json={"workType": "qa", "candidates": []},
            headers=worker,
        )
        assert empty.json()["source"] == "no-candidates"


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("routing-feedback", {"provider": "c", "workType": "qa"}, "reward: Field required"),
        (
            "routing-feedback",
            {"provider": "c", "workType": "qa", "reward": "1"},
            "reward: Input should be a valid number",
        ),
        (
            "routing-feedback",
            {"provider": "", "workType": "qa", "reward": 1},
            "provider: String should have at least 1 character",
        ),
        ("routing-select", {"candidates": ["c"]}, "workType: Field required"),
        (
            "routing-select",
            {"workType": "qa", "candidates": "c"},
            "candidates: Input should be a valid list",
        ),
    ],
)
async def test_bad_router_input_names_the_field(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], message: str
) -> None:
    await new_org(api, "a")
    sid = (await queue(api, ADMIN, orgId="a")).json()["sessionId"]
    _, worker = await runtime_token(api, "a")
    reply = await api.post(f"/api/sessions/{sid}/{path}", json=body, headers=worker)
    assert (reply.status_code, reply.json()["message"]) == (400, message)
    metrics = (await api.get("/api/public/routing-metrics", headers=ADMIN)).json()
    assert metrics["posteriors"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "yesterday"}, 'Invalid "from" parameter: must be a valid ISO-8601 date'),
        ({"to": "2026-13-01T00:00:00Z"}, 'Invalid "to" parameter: must be a valid ISO-8601 date'),
        ({"limit": "0"}, 'Invalid "limit" parameter: must be a positive integer'),
        ({"limit": "x"}, 'Invalid "limit" parameter: must be a positive integer'),
    ],
)
async def test_bad_metrics_queries_answer_as_the_reference(
    api: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    reply = await api.get("/api/public/routing-metrics", params=params, headers=ADMIN)
    assert (reply.status_code, reply.json()) == (400, {"error": message})


async def test_metrics_need_sessions_read(api: httpx.AsyncClient) -> None:
    await new_org(api, "a")
    workers_only = await key(api, "a", scopes=["workers:read"])
    for path in ("/api/public/routing-metrics", "/api/public/phase-metrics"):
        reply = await api.get(path, headers=workers_only)
        assert reply.json() == {"error": "This key lacks the sessions:read scope"}


async def test_phase_metrics_per_work_type(api: httpx.AsyncClient, clock: ManualClock) -> None:
    await new_org(api, "a")
    await new_org(api, "b")
    worker, token = await runtime_token(api, "a")
    ids = []
    for issue in ("ENG-1", "ENG-1", "ENG-2"):
        queued = await queue(api, ADMIN, orgId="a", issueIdentifier=issue, workType="qa")
        ids.append(queued.json()["sessionId"])
    for _ in range(3):
        polled = (await api.get(f"/api/workers/{worker}/poll", headers=token)).json()
        for sid in polled["claimedSessionIds"]:
            clock.advance(60)
            done = {"workerId": worker, "status": "completed", "totalCostUsd": 0.5}
            reply = await api.post(f"/api/sessions/{sid}/status", json=done, headers=token)
            assert reply.status_code == 200, reply.text
    metrics = await api.get(
        "/api/public/phase-metrics", params={"timeRange": "bogus"}, headers=await key(api, "a")
    )
    body = metrics.json()
    assert body["timeRange"] == "30d"
    qa = body["phases"]["qa"]
    assert (qa["totalRecords"], qa["avgAttempts"], qa["avgCostUsd"]) == (3, 1.5, 0.5)
    assert qa["avgCycleTimeMs"] > 0
    assert (body["issueCount"], body["reworkRate"]) == (2, 0.5)
    assert body["escalationDistribution"] == {"0": 1, "1": 1}
    theirs = (await api.get("/api/public/phase-metrics", headers=await key(api, "b"))).json()
    assert theirs["phases"] == {} and theirs["issueCount"] == 0
