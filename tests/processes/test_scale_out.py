"""Scale-out on one PostgreSQL: 3 real `shopfloor serve` processes, 60 concurrent AgentFactory
workers (asyncio tasks in 2 worker OS processes, round-robin across the servers) and 3,000
sessions enqueued while the workers run.

Done means: every session is claimed and completed, none is lost, none is held by two workers
at once (checked on each session's full status history), and each completion is acknowledged
to exactly one worker. The second run SIGKILLs one server mid-way: workers and the producer
move to the other servers, and poll replies lost with the killed process are recovered when
their claim leases expire."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from shopfloor.store import open_store
from shopfloor.store.sql import SqlStore
from tests.conftest import ADMIN_KEY, WORKER_KEY, Backend
from tests.processes.fleet import FleetConfig
from tests.processes.servers import Server, server_env, start_server

SERVERS = 3
FLEETS = 2
WORKERS_PER_FLEET = 30
SESSIONS = 3_000
PRODUCERS = 12
# A pre-claim must be reported running within the claim TTL. Without a kill, it is long enough
# that even a heavily loaded machine never lets one lapse (so each session is claimed exactly
# once); with the kill, short, so the replies lost with the killed server are recovered soon.
CLAIM_TTL = 60.0
CLAIM_TTL_WITH_KILL = 5.0
DEADLINE = 600.0  # a failure bound for a starved CI machine, not a timing assertion
VERBOSE = bool(os.environ.get("SHOPFLOOR_TEST_PROGRESS"))
REPO = Path(__file__).resolve().parents[2]


async def produce(servers: list[Server], ids: list[str]) -> set[str]:
    """Enqueue every id through the operator API, round-robin; a create whose reply was lost
    is retried elsewhere and answered 409 (it exists), which counts as created."""
    created: set[str] = set()
    todo = iter(ids)
    turn = itertools.count()
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}

    async def producer(client: httpx.AsyncClient) -> None:
        for sid in todo:
            while True:
                url = servers[next(turn) % len(servers)].url
                try:
                    reply = await client.post(
                        url + "/api/v1/sessions",
                        json={"sessionId": sid, "prompt": f"do {sid}", "workType": "research"},
                        headers=headers,
                    )
                    if reply.status_code in (201, 409):
                        created.add(sid)
                        break
                    assert reply.status_code >= 500, reply.text
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)

    async with httpx.AsyncClient(timeout=httpx.Timeout(30, connect=5)) as client:
        await asyncio.gather(*(producer(client) for _ in range(PRODUCERS)))
    return created


async def completed_count(store: SqlStore) -> int:
    async with store.db.connect() as conn:
        count = await conn.scalar(
            sa.text("SELECT count(*) FROM sessions WHERE status = 'completed'")
        )
    return int(count or 0)


async def histories(store: SqlStore) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    async with store.db.connect() as conn:
        sessions = {
            r.id: r
            for r in await conn.execute(sa.text("SELECT id, status, worker_id FROM sessions"))
        }
        events: dict[str, list[Any]] = defaultdict(list)
        rows = await conn.execute(
            sa.text(
                "SELECT session_id, status, worker_id, reason FROM session_events"
                " WHERE kind = 'status' ORDER BY id"
            )
        )
        for r in rows:
            events[r.session_id].append(r)
    return sessions, events


def check_history(sid: str, events: list[Any]) -> tuple[int, str]:
    """Replay one session's history: a claim only ever takes a pending session, and only the
    current holder ever reports on it. Returns (claims, worker that completed it)."""
    assert events[0].status == "pending" and events[0].reason == "created", (sid, events)
    holder: str | None = None
    claims = 0
    completed_by: list[str] = []
    for e in events[1:]:
        if e.status == "claimed":
            assert holder is None, f"{sid} claimed by {e.worker_id} while held by {holder}"
            holder, claims = e.worker_id, claims + 1
        elif e.status == "pending":
            assert holder is not None and e.worker_id == holder, (sid, events)
            holder = None
        else:
            assert holder is not None and e.worker_id == holder, (sid, events)
            if e.status == "completed":
                completed_by.append(holder)
    assert len(completed_by) == 1, (sid, events)
    assert holder == completed_by[0], (sid, events)  # the claim that led to completion is last
    return claims, completed_by[0]


def start_fleet(
    servers: list[Server], n: int, tmp_path: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp_path / f"fleet{n}.jsonl"
    cfg = FleetConfig(
        servers=[s.url for s in servers],
        worker_key=WORKER_KEY,
        workers=WORKERS_PER_FLEET,
        capacity=3,
        first_index=n * WORKERS_PER_FLEET,
        out=str(out),
        stop_file=str(tmp_path / "stop"),
    )
    log = (tmp_path / f"fleet{n}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.processes.fleet", json.dumps(asdict(cfg))],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, out


async def run_fleet(postgres: Backend, tmp_path: Path, *, kill_one: bool) -> None:
    env = server_env(
        postgres,
        tmp_path / "data",
        claim_ttl_seconds=CLAIM_TTL_WITH_KILL if kill_one else CLAIM_TTL,
        worker_ttl_seconds=120,  # workers heartbeat every 10 s
        reap_interval_seconds=0.5,
    )
    store = await open_store(postgres.url, schema=postgres.schema)
    assert isinstance(store, SqlStore)
    servers: list[Server] = []
    ids = [f"sess_scale_{n:05d}" for n in range(SESSIONS)]
    # Half the sessions wait in the queue when the workers start; the rest arrive while they
    # poll. (A starved queue would spend the CPU of a small CI machine on empty polls.)
    fleets: list[tuple[subprocess.Popen[bytes], Path]] = []
    killed: Server | None = None
    try:
        servers.extend(start_server(env, tmp_path / f"server{i}.log") for i in range(SERVERS))
        assert await produce(servers, ids[: SESSIONS // 2]) == set(ids[: SESSIONS // 2])
        fleets = [start_fleet(servers, n, tmp_path) for n in range(FLEETS)]
        producing = asyncio.create_task(produce(servers, ids[SESSIONS // 2 :]))
        started = time.monotonic()
        while (done := await completed_count(store)) < SESSIONS:
            assert time.monotonic() - started < DEADLINE, f"only {done} completed"
            for process, _ in fleets:
                assert process.poll() is None, "a worker fleet died"
            if kill_one and killed is None and done >= SESSIONS // 3:
                killed = servers[1]
                killed.kill()
            if VERBOSE:
                print(f"{time.monotonic() - started:6.1f}s completed {done}", flush=True)
            await asyncio.sleep(1 if VERBOSE else 0.25)
        assert await producing == set(ids[SESSIONS // 2 :])
        (tmp_path / "stop").touch()
        for process, _ in fleets:
            assert process.wait(60) == 0
        sessions, events = await histories(store)
    finally:
        (tmp_path / "stop").touch()
        for process, _ in fleets:
            if process.poll() is None:
                process.kill()
        for server in servers:
            server.stop()
        await store.close()

    # Nothing lost, nothing extra: exactly our sessions, all completed.
    assert set(sessions) == set(ids)
    assert Counter(s.status for s in sessions.values()) == {"completed": SESSIONS}

    claims: Counter[int] = Counter()
    for sid in ids:
        n_claims, completed_by = check_history(sid, events[sid])
        assert sessions[sid].worker_id == completed_by
        claims[n_claims] += 1

    # Each completion acknowledged to exactly the worker the history names.
    records = [json.loads(line) for _, out in fleets for line in out.read_text().splitlines()]
    assert not [r for r in records if r["event"] == "crashed"], records
    acks = [(r["session"], r["worker"]) for r in records if r["event"] == "completed"]
    assert Counter(sid for sid, _ in acks) == Counter(ids)
    assert all(sessions[sid].worker_id == wid for sid, wid in acks)
    retries = sum(r["retries"] for r in records if r["event"] == "summary")

    if not kill_one:
        assert claims == {1: SESSIONS}, claims  # every session claimed exactly once
        assert not [r for r in records if r["event"] == "dropped"], records
    else:
        assert killed is not None and killed.process.returncode == -9
        assert retries > 0  # workers really were cut off and moved to other servers
    print(f"claims per session: {dict(claims)}; requests retried elsewhere: {retries}")


async def test_three_servers_sixty_workers_three_thousand_sessions(
    postgres: Backend, tmp_path: Path
) -> None:
    await run_fleet(postgres, tmp_path, kill_one=False)


async def test_a_server_killed_midway_loses_nothing(postgres: Backend, tmp_path: Path) -> None:
    await run_fleet(postgres, tmp_path, kill_one=True)
