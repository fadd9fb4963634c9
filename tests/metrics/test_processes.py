"""/metrics of `shopfloor serve --processes 3` on PostgreSQL: whichever process answers a
scrape, the counters and the request histogram are the server's totals (prometheus-client's
multiprocess files, in a private folder the server removes when it stops)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.agentfactory.helpers import ADMIN, WORKER
from tests.conftest import Backend
from tests.metrics.test_metrics import Samples, value
from tests.processes.servers import server_env, spawned_children, start_server

pytestmark = pytest.mark.slow
QUEUED = {"method": "POST", "route": "/api/v1/sessions", "status": "201"}
COUNT = "shopfloor_http_request_duration_seconds_count"


async def scrape(url: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    # A connection of its own each time, so the scrapes go to different processes.
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        r = await client.get("/metrics", headers=ADMIN)
    assert r.status_code == 200, r.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


async def test_every_process_answers_with_the_servers_totals(
    postgres: Backend, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = server_env(
        postgres, tmp_path / "data", processes=3, claim_ttl_seconds=1, reap_interval_seconds=0.2
    )
    env["TMPDIR"] = str(scratch)
    server = start_server(env, tmp_path / "serve.log")
    try:
        assert len(spawned_children(server.process.pid)) == 3, server.output()
        assert next(p.name for p in scratch.iterdir()).startswith("shopfloor-metrics-")
        fresh = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, timeout=10, limits=fresh) as client:
            queued = []
            for _ in range(6):
                r = await client.post("/api/v1/sessions", json={"prompt": "p"}, headers=ADMIN)
                assert r.status_code == 201, r.text
                queued.append(r.json()["sessionId"])
            body = {"hostname": "h", "capacity": 1}
            worker = (await client.post("/api/workers/register", json=body, headers=WORKER)).json()
            polled = await client.get(f"/api/workers/{worker['workerId']}/poll", headers=WORKER)
            assert len(polled.json()["work"]) == 1
            # Another one is stopped while pending: an ending, counted by the process that
            # served the stop, seen from every process.
            unclaimed = next(s for s in queued if s != polled.json()["work"][0]["sessionId"])
            r = await client.post(f"/api/v1/sessions/{unclaimed}/stop", json={}, headers=ADMIN)
            assert r.status_code == 200, r.text
        # The claim is never reported running: some process's reaper takes it back.
        for _ in range(100):
            if (
                value(
                    await scrape(server.url),
                    "shopfloor_sessions_requeued_total",
                    cause="lease_expired",
                )
                == 1
            ):
                break
            await asyncio.sleep(0.2)
        for _ in range(9):
            samples = await scrape(server.url)
            assert value(samples, COUNT, **QUEUED) == 6
            assert value(samples, "shopfloor_sessions_requeued_total", cause="lease_expired") == 1
            queue = {"org": "org_default", "queue": "agentfactory", "project": ""}
            assert value(samples, "shopfloor_queue_depth", **queue) == 5
            stopped = {"protocol": "agentfactory", "status": "stopped"}
            assert value(samples, "shopfloor_sessions_ended_total", **stopped) == 1
            assert value(samples, "shopfloor_db_operations_total", kind="write") >= 8
    finally:
        server.stop()
    assert list(scratch.iterdir()) == [], "the metrics folder outlived the server"
