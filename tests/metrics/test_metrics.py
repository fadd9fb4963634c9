"""GET /metrics: who may scrape it, and that its figures move with what the queue does
(parsed with prometheus-client's own parser, on SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shopfloor.clock import ManualClock
from tests.agentfactory.helpers import ADMIN, WORKER, enqueue, poll, register, status
from tests.conftest import Backend, make_settings, running_app
from tests.environments.helpers import Q, new_environment
from tests.environments.helpers import enqueue as enqueue_work
from tests.platform.test_tenancy import key, new_org
from tests.veryfront.test_runs_api import leased_run

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(api: httpx.AsyncClient, headers: dict[str, str] = ADMIN) -> Samples:
    r = await api.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


QUEUE = {"org": "org_default", "queue": "agentfactory", "project": ""}


async def test_the_figures_follow_the_queue(api: httpx.AsyncClient, clock: ManualClock) -> None:
    for _ in range(4):
        await enqueue(api)
    clock.advance(30)
    before = await scrape(api)
    assert value(before, "shopfloor_queue_depth", **QUEUE) == 4
    assert value(before, "shopfloor_sessions", **QUEUE, status="pending") == 4
    assert value(before, "shopfloor_queue_oldest_age_seconds", **QUEUE) == 30
    assert (
        value(
            before, "shopfloor_workers", org="org_default", protocol="agentfactory", status="active"
        )
        == 0
    )

    worker = await register(api, capacity=3)
    claimed = [w["sessionId"] for w in (await poll(api, worker))["work"]]
    assert len(claimed) == 3
    assert (await status(api, claimed[0], worker, "running")).status_code == 200
    assert (await status(api, claimed[1], worker, "running")).status_code == 200
    assert (await status(api, claimed[1], worker, "completed")).status_code == 200
    after = await scrape(api)
    assert value(after, "shopfloor_queue_depth", **QUEUE) == 1
    assert value(after, "shopfloor_sessions", **QUEUE, status="claimed") == 1
    assert value(after, "shopfloor_sessions", **QUEUE, status="running") == 1
    assert value(after, "shopfloor_sessions", **QUEUE, status="completed") == 0  # not counted
    # Each of the three had waited the 30 s since it was queued.
    waited = {"protocol": "agentfactory"}
    assert value(after, "shopfloor_claim_wait_seconds_count", **waited) == 3
    assert value(after, "shopfloor_claim_wait_seconds_sum", **waited) == 90
    assert value(after, "shopfloor_claim_wait_seconds_bucket", **waited, le="30.0") == 3
    assert value(after, "shopfloor_claim_wait_seconds_bucket", **waited, le="10.0") == 0
    fleet = {"org": "org_default", "protocol": "agentfactory"}
    assert value(after, "shopfloor_workers", **fleet, status="active") == 1
    assert value(after, "shopfloor_worker_capacity", **fleet) == 3

    # The claimed one is never reported running: its claim lease runs out and the reaper
    # takes it back; then the worker falls silent and takes the running one with it.
    services = api.app.state.services  # type: ignore[attr-defined]
    clock.advance(61)
    await _heartbeat(api, worker)
    clock.advance(60)
    await _heartbeat(api, worker)
    await services.dispatcher.reap()
    expired = await scrape(api)
    assert value(expired, "shopfloor_sessions_requeued_total", cause="lease_expired") == 1
    assert value(expired, "shopfloor_queue_depth", **QUEUE) == 2
    clock.advance(services.settings.worker_ttl + 1)
    await services.dispatcher.reap()
    dead = await scrape(api)
    assert value(dead, "shopfloor_sessions_requeued_total", cause="worker_dead") == 1
    assert value(dead, "shopfloor_workers_declared_dead_total") == 1
    assert value(dead, "shopfloor_workers", **fleet, status="active") == 0
    assert value(dead, "shopfloor_worker_capacity", **fleet) == 0
    assert value(dead, "shopfloor_queue_depth", **QUEUE) == 3


async def test_requests_are_counted_by_route_template_and_status(api: httpx.AsyncClient) -> None:
    worker = await register(api)
    for _ in range(3):
        await poll(api, worker)  # the fast lane serves these
    assert (await api.get("/api/workers/wkr_nobody/poll", headers=WORKER)).status_code == 404
    for n in range(5):
        assert (await api.get(f"/no/such/path/{n}")).status_code == 404
    samples = await scrape(api)
    name = "shopfloor_http_request_duration_seconds_count"
    route = "/api/workers/{worker_id}/poll"
    assert value(samples, name, method="GET", route=route, status="200") == 3
    assert value(samples, name, method="GET", route=route, status="404") == 1
    assert value(samples, name, method="GET", route="(unmatched)", status="404") == 5
    register_route = {"method": "POST", "route": "/api/workers/register", "status": "201"}
    assert value(samples, name, **register_route) == 1
    bucket = "shopfloor_http_request_duration_seconds_bucket"
    assert value(samples, bucket, method="GET", route=route, status="200", le="+Inf") == 3


async def test_metrics_need_the_admin_key_or_the_metrics_token(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    settings = make_settings(backend, tmp_path, metrics_token="scrape-me")
    async with running_app(settings, clock) as api:
        org_key = await _org_key(api)
        for headers in (
            {},
            WORKER,
            {"Authorization": f"Bearer {org_key}"},
            {"Authorization": "Bearer scrape-me-not"},
        ):
            r = await api.get("/metrics", headers=headers)
            assert r.status_code == 401, headers
            assert "SHOPFLOOR_METRICS_TOKEN" in r.json()["message"]
        await scrape(api, {"Authorization": "Bearer scrape-me"})
        await scrape(api, ADMIN)


async def test_public_metrics_need_no_key(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    async with running_app(make_settings(backend, tmp_path, metrics_public=True), clock) as api:
        await scrape(api, {})


async def _heartbeat(api: httpx.AsyncClient, worker: str) -> None:
    path = f"/api/workers/{worker}/heartbeat"
    r = await api.post(path, json={"activeCount": 1}, headers=WORKER)
    assert r.status_code == 200, r.text


async def _org_key(api: httpx.AsyncClient) -> str:
    await new_org(api, "acme")
    return (await key(api, "acme", scopes=["*"]))["Authorization"].removeprefix("Bearer ")


async def test_environment_deliveries_are_counted(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    env = await new_environment(api)
    await enqueue_work(api, env)
    await enqueue_work(api, env)
    clock.advance(2)
    headers = {**ADMIN, "Worker-ID": "w1"}
    for _ in range(3):  # two items, then nothing
        r = await api.get(f"{Q}/{env}/work/poll", headers=headers)
        assert r.status_code == 200, r.text
    samples = await scrape(api)
    waited = {"protocol": "environments"}
    assert value(samples, "shopfloor_claim_wait_seconds_count", **waited) == 2
    assert value(samples, "shopfloor_claim_wait_seconds_sum", **waited) == 4
    queue = {"org": "org_default", "queue": env, "project": ""}
    assert value(samples, "shopfloor_sessions", **queue, status="pending") == 2  # until acked


async def test_veryfront_claims_are_counted(api: httpx.AsyncClient) -> None:
    _, _, run = await leased_run(api)
    samples = await scrape(api)
    assert value(samples, "shopfloor_claim_wait_seconds_count", protocol="veryfront") == 1
    path = f"/runs/{run['run_id']}/complete"
    for _ in range(2):  # the second is a repeat: nothing ends twice
        reply = await api.post(path, headers=ADMIN, json={"status": "completed"})
        assert reply.status_code == 200, reply.text
    ended = await scrape(api)
    done = {"protocol": "veryfront", "status": "completed"}
    assert value(ended, "shopfloor_sessions_ended_total", **done) == 1


async def test_endings_are_counted_as_they_happen(api: httpx.AsyncClient) -> None:
    """Completions count each session once, when it ends (whatever ended it), not the
    finished sessions in the database; workers that end count by cause."""
    ended = "shopfloor_sessions_ended_total"
    af = {"protocol": "agentfactory"}
    before = await scrape(api)
    assert value(before, ended, **af, status="completed") == 0  # shown at 0 from the start
    assert ("shopfloor_workers_ended_total", frozenset({("cause", "dead")})) in before
    for _ in range(3):
        await enqueue(api)
    worker = await register(api, capacity=3)
    claimed = [w["sessionId"] for w in (await poll(api, worker))["work"]]
    assert (await status(api, claimed[0], worker, "running")).status_code == 200
    assert (await status(api, claimed[0], worker, "completed")).status_code == 200
    assert (await status(api, claimed[0], worker, "completed")).status_code == 200  # a repeat
    assert (await status(api, claimed[1], worker, "failed")).status_code == 200
    stop = await api.post(f"/api/v1/sessions/{claimed[2]}/stop", json={}, headers=ADMIN)
    assert stop.status_code == 200, stop.text
    pending = (await enqueue(api))["sessionId"]
    stop = await api.post(f"/api/v1/sessions/{pending}/stop", json={}, headers=ADMIN)
    assert stop.status_code == 200, stop.text
    assert (await api.delete(f"/api/workers/{worker}", headers=WORKER)).status_code == 200
    after = await scrape(api)
    assert value(after, ended, **af, status="completed") == 1
    assert value(after, ended, **af, status="failed") == 1
    assert value(after, ended, **af, status="stopped") == 2
    assert value(after, "shopfloor_workers_ended_total", cause="deregistered") == 1
    # Scraping again counts nothing twice.
    assert value(await scrape(api), ended, **af, status="completed") == 1


async def test_an_environment_session_ending_counts_under_environments(
    api: httpx.AsyncClient,
) -> None:
    env = await new_environment(api)
    sid = await enqueue_work(api, env)
    stopped = await api.post(f"/api/v1/sessions/{sid}/stop", json={}, headers=ADMIN)
    assert stopped.status_code == 200, stopped.text
    samples = await scrape(api)
    ended = "shopfloor_sessions_ended_total"
    assert value(samples, ended, protocol="environments", status="stopped") == 1
    assert value(samples, ended, protocol="agentfactory", status="stopped") == 0


async def test_database_time_is_measured_per_transaction(api: httpx.AsyncClient) -> None:
    ops, seconds = "shopfloor_db_operations_total", "shopfloor_db_seconds_total"
    before = await scrape(api)
    await enqueue(api)  # one write transaction at least
    after = await scrape(api)
    writes = value(after, ops, kind="write") - value(before, ops, kind="write")
    reads = value(after, ops, kind="read") - value(before, ops, kind="read")
    assert writes >= 1 and reads >= 1  # the scrape's own counts are reads
    assert value(after, seconds, kind="write") > value(before, seconds, kind="write")
    kinds = {dict(labels)["kind"] for metric, labels in after if metric == ops}
    assert kinds == {"read", "write", "commit"}  # a fixed, small label set


def test_database_time_tallies_move_into_the_counters_once() -> None:
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    from shopfloor.api.metrics.db_time import DbTime

    registry = CollectorRegistry()
    seconds = Counter("t_db_seconds", "t", ("kind",), registry=registry)
    operations = Counter("t_db_operations", "t", ("kind",), registry=registry)
    tally = DbTime(seconds, operations, ("read", "write"))
    for took in (0.0005, 0.001, 0.005, 3.0):
        tally.observe("read", took)
    tally.observe("write", 0.02)
    tally.flush()
    tally.flush()  # nothing twice
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert value(samples, "t_db_operations_total", kind="read") == 4
    assert abs(value(samples, "t_db_seconds_total", kind="read") - 3.0065) < 1e-9
    assert value(samples, "t_db_operations_total", kind="write") == 1
    assert abs(value(samples, "t_db_seconds_total", kind="write") - 0.02) < 1e-12


async def test_superseded_parked_work_counts_as_stopped(api: httpx.AsyncClient) -> None:
    issue = {"issueId": "iss-9", "issueIdentifier": "ENG-9"}
    await enqueue(api, workType="development", **issue)  # holds the issue's lock
    older = await enqueue(api, workType="qa", **issue)
    assert older["status"] == "parked"
    await enqueue(api, workType="qa", **issue)  # replaces the older parked one
    samples = await scrape(api)
    stopped = {"protocol": "agentfactory", "status": "stopped"}
    assert value(samples, "shopfloor_sessions_ended_total", **stopped) == 1
