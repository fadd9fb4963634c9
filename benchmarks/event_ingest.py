"""Event ingestion: K sessions, each streaming events to the server as fast as it answers.

Phases, one after another on one server (a fresh SQLite file or Postgres database):
- `af`: AgentFactory `POST /api/sessions/{id}/activity`, one event per request, by the
  worker holding the session (each of K workers registered with capacity 1, then one poll
  claimed one session);
- `vf1`, `vf20`, `vf100`: Veryfront `POST /conversations/{c}/runs/{run}/events` with 1, 20
  and 100 AG-UI events per request, by the worker holding the run's lease (K workers, each
  admitted one run and claimed it).
Every lane (one session, one keep-alive connection) sends its next request as soon as the
last one was answered, for `ingest_seconds`; the lanes are split over the load processes.
Events/s = events the server acknowledged / (last answer - go); latency = one request's
round trip as its lane saw it.

The ceiling of each phase: the same rows (`session_events` for an activity, `run_events`
for an AG-UI event; the same columns and payload sizes) inserted straight through the
driver, with the same batching (one transaction per request's worth of events), no HTTP, no
fence, no cursor update: sqlite3 on one connection (WAL, synchronous=NORMAL, as the
server), or asyncpg with the server's pool size and K lanes. It runs in one process of its
own on a fresh database migrated by the server's own migrations, in the same run. And the
HTTP ceiling of one-event requests: the bare FastAPI endpoint of benchmarks/ceiling_app.py
under the same K lanes posting the same activity body (`bare_*`)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CREW_PROCESSES,
    Child,
    Config,
    Crew,
    drop_pg_database,
    fresh_pg_database,
    percentile,
    run_child,
    split,
)
from benchmarks.http import HttpConn
from benchmarks.server import (
    ADMIN_AUTH,
    PG_DATABASE,
    WORKER_AUTH,
    cpu_seconds,
    shopfloor_server,
)

TEXT = "y" * 96  # the ~100 bytes of text every event carries
PG_POOL = 20  # the server's Postgres pool (store/sql.py), for the ceiling
LEASE_SECONDS = 300  # the longest Veryfront lease: the runs stay held through every phase


@dataclass(frozen=True)
class Phase:
    name: str
    protocol: str  # "af" | "vf"
    batch: int  # events per request


PHASES = (
    Phase("af", "af", 1),
    Phase("vf1", "vf", 1),
    Phase("vf20", "vf", 20),
    Phase("vf100", "vf", 100),
)


def activity() -> dict[str, Any]:
    return {"type": "thought", "content": TEXT}


def agui(message_id: str) -> dict[str, Any]:
    return {"type": "TEXT_MESSAGE_CONTENT", "messageId": message_id, "delta": TEXT}


# -- the harness side --


async def run(cfg: Config, backend: str, work_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"sessions": cfg.ingest_sessions}
    async with shopfloor_server(backend, work_dir, **cfg.af_settings()) as server:
        lanes = {
            "af": await setup_af(server.url, cfg.ingest_sessions),
            "vf": await setup_vf(server.url, cfg.ingest_sessions),
        }
        for phase in PHASES:
            args = [
                {
                    "mode": "http",
                    "url": server.url,
                    "phase": phase.name,
                    "protocol": phase.protocol,
                    "batch": phase.batch,
                    "seconds": cfg.ingest_seconds,
                    "lanes": part,
                }
                for part in _parts(lanes[phase.protocol])
            ]
            cpu0 = cpu_seconds(server)
            measured = await _drive(args, work_dir / "logs" / phase.name)
            cpu = cpu_seconds(server) - cpu0
            measured["server_cpu_percent"] = 100 * cpu / measured["seconds"]
            result.update(_prefixed(phase.name, measured))
    result.update(await ceiling(cfg, backend, work_dir))
    result.update(await bare_endpoint(cfg, work_dir))
    return result


async def bare_endpoint(cfg: Config, work_dir: Path) -> dict[str, float]:
    """The bare FastAPI endpoint (benchmarks/ceiling_app.py's POST) under the same K lanes
    posting the same one-event activity body: the request rate HTTP alone allows here."""
    from benchmarks.ceiling import start_ceiling

    await asyncio.to_thread((work_dir / "logs").mkdir, parents=True, exist_ok=True)
    proc, url = await asyncio.to_thread(start_ceiling, work_dir / "logs" / "bare.log")
    try:
        lanes = [{"session": "bare", "worker": "wkr_bare"}] * cfg.ingest_sessions
        args = [
            {
                "mode": "http",
                "url": url,
                "protocol": "bare",
                "batch": 1,
                "seconds": cfg.ingest_seconds,
                "lanes": part,
            }
            for part in _parts(lanes)
        ]
        measured = await _drive(args, work_dir / "logs" / "bare")
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 20)
    return _prefixed("bare", measured)


def _parts(lanes: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    sizes, parts, at = split(len(lanes), CREW_PROCESSES), [], 0
    for size in sizes:
        parts.append(lanes[at : at + size])
        at += size
    return [p for p in parts if p]


def _prefixed(phase: str, measured: dict[str, float]) -> dict[str, float]:
    return {f"{phase}_{k}": v for k, v in measured.items() if k != "seconds"}


async def _drive(args: list[dict[str, Any]], log_dir: Path) -> dict[str, float]:
    """One crew, one phase: events/s, requests/s and round-trip percentiles."""
    crew = Crew(__name__, args, log_dir)
    try:
        await asyncio.to_thread(crew.wait_ready)
        go = crew.send("go")
        finals = await asyncio.to_thread(crew.results)
    finally:
        crew.kill()
    seconds = (max(int(f["end_ns"]) for f in finals) - go) / 1e9
    latencies_ms = [us / 1000 for f in finals for us in f["latencies_us"]]
    events = sum(int(f["events"]) for f in finals)
    if not events:
        raise RuntimeError("no event was acknowledged")
    return {
        "seconds": seconds,
        "events_per_s": events / seconds,
        "requests_per_s": len(latencies_ms) / seconds,
        "p50_ms": percentile(latencies_ms, 0.50) or 0.0,
        "p99_ms": percentile(latencies_ms, 0.99) or 0.0,
    }


async def setup_af(url: str, k: int) -> list[dict[str, Any]]:
    """K queued sessions, K workers of capacity 1, each of which claims one by polling."""
    admin = HttpConn.for_url(url, ADMIN_AUTH)
    worker = HttpConn.for_url(url, WORKER_AUTH)
    try:
        for i in range(k):
            await admin.call("POST", "/api/v1/sessions", {"prompt": f"ingest {i}"})
        lanes = []
        for _ in range(k):
            reg = await worker.call(
                "POST", "/api/workers/register", {"hostname": "bench", "capacity": 1}
            )
            work = (await worker.call("GET", f"/api/workers/{reg['workerId']}/poll"))["work"]
            if len(work) != 1:
                raise RuntimeError(f"a worker's poll claimed {len(work)} sessions, not 1")
            lanes.append({"session": work[0]["sessionId"], "worker": reg["workerId"]})
        return lanes
    finally:
        await admin.close()
        await worker.close()


async def setup_vf(url: str, k: int) -> list[dict[str, Any]]:
    """K Veryfront workers, each admitted one run (by its worker key) and holding its lease."""
    admin = HttpConn.for_url(url, ADMIN_AUTH)
    lanes = []
    try:
        for i in range(k):
            reg = await admin.call(
                "POST",
                "/agent-workers/projects/bench/workers",
                {
                    "implementation_kind": "bench",
                    "implementation_display_name": "ingest bench",
                    "worker_key": f"ingest-{i}-{uuid.uuid4().hex[:8]}",
                },
            )
            wid, token = reg["worker"]["id"], reg["token"]
            hb = await admin.call("POST", f"/agent-workers/workers/{wid}/heartbeat")
            admission = {
                "mode": "worker",
                "implementation_kind": "bench",
                "worker_key": hb["worker"]["worker_key"],
            }
            await admin.call(
                "POST",
                "/runs",
                {"project_id": "bench", "input": "go", "config": {"agent_admission": admission}},
            )
            conn = HttpConn.for_url(url, {"Authorization": f"Bearer {token}"})
            try:
                claimed = await conn.call(
                    "POST",
                    f"/agent-workers/workers/{wid}/claim",
                    {"lease_duration_seconds": LEASE_SECONDS},
                )
            finally:
                await conn.close()
            run = claimed["run"]
            if run is None:
                raise RuntimeError("a Veryfront worker claimed no run")
            lanes.append(
                {"token": token, "conversation": run["conversation_id"], "run": run["run_id"]}
            )
        return lanes
    finally:
        await admin.close()


async def ceiling(cfg: Config, backend: str, work_dir: Path) -> dict[str, Any]:
    """Every phase's rows straight through the driver, on a fresh migrated database."""
    from shopfloor.store import open_store

    if backend == "sqlite":
        path = work_dir / "ceiling.db"
        await asyncio.to_thread(_remove_sqlite, path)
        store_url, target = f"sqlite:///{path}", {"sqlite": str(path)}
    else:
        store_url = await fresh_pg_database(PG_DATABASE + "_ceiling")
        target = {"dsn": store_url}
    store = await open_store(store_url)
    await store.close()
    result: dict[str, Any] = {}
    try:
        for phase in PHASES:
            args = {
                "mode": "ceiling",
                "phase": phase.name,
                "protocol": phase.protocol,
                "batch": phase.batch,
                "seconds": cfg.ingest_seconds,
                "lanes": cfg.ingest_sessions,
                **target,
            }
            measured = await _drive([args], work_dir / "logs" / f"ceiling-{phase.name}")
            result.update(_prefixed(f"ceiling_{phase.name}", measured))
    finally:
        if backend == "postgres":
            await drop_pg_database(PG_DATABASE + "_ceiling")
    return result


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# -- the load process: HTTP lanes --


class Lane:
    def __init__(self, args: dict[str, Any], lane: dict[str, Any], url: str) -> None:
        self.batch = int(args["batch"])
        self.latencies_us: list[int] = []
        self.events = 0
        if args["protocol"] in ("af", "bare"):
            self.conn = HttpConn.for_url(url, WORKER_AUTH)
            self.path = (
                "/status"
                if args["protocol"] == "bare"
                else f"/api/sessions/{lane['session']}/activity"
            )
            self.worker = lane["worker"]
        else:
            self.conn = HttpConn.for_url(url, {"Authorization": f"Bearer {lane['token']}"})
            self.path = f"/conversations/{lane['conversation']}/runs/{lane['run']}/events"
            self.worker = None

    def body(self) -> dict[str, Any]:
        if self.worker is not None:
            return {"workerId": self.worker, "activity": activity()}
        message_id = str(uuid.uuid4())
        return {"events": [agui(message_id) for _ in range(self.batch)]}

    async def send(self) -> None:
        await self.conn.call("POST", self.path, self.body())

    async def stream(self, child: Child, until: float) -> None:
        while time.monotonic() < until and not child.stop.is_set():
            body = self.body()
            started = time.perf_counter_ns()
            await self.conn.call("POST", self.path, body)
            self.latencies_us.append((time.perf_counter_ns() - started) // 1000)
            self.events += self.batch
            child.completed()


async def http_main(child: Child) -> dict[str, Any]:
    args = child.args
    lanes = [Lane(args, lane, args["url"]) for lane in args["lanes"]]
    for lane in lanes:  # connect (one event each, not counted)
        await lane.send()
    await child.ready()
    until = time.monotonic() + float(args["seconds"])
    try:
        await asyncio.gather(*(lane.stream(child, until) for lane in lanes))
    finally:
        for lane in lanes:
            await lane.conn.close()
    return {
        "events": sum(lane.events for lane in lanes),
        "latencies_us": [us for lane in lanes for us in lane.latencies_us],
    }


# -- the load process: the driver-only ceiling --

AF_SQL = (
    "INSERT INTO session_events (session_id, at, kind, worker_id, data) "
    "VALUES ({p1}, {p2}, 'activity', {p3}, {p4}) RETURNING id"
)
VF_SQL = (
    "INSERT INTO run_events (run_id, event_id, type, at, payload) "
    "VALUES ({p1}, {p2}, {p3}, {p4}, {p5})"
)


def _sql(template: str, style: str) -> str:
    marks = {f"p{i}": ("?" if style == "qmark" else f"${i}") for i in range(1, 6)}
    return template.format(**marks)


class Rows:
    """The rows of one lane: what the server stores for the same requests."""

    def __init__(self, protocol: str, lane: int, batch: int) -> None:
        self.protocol = protocol
        self.batch = batch
        self.key = f"ceiling-{lane:03d}-{uuid.uuid4().hex[:12]}"  # a session or run id
        self.next_event = 1

    def next(self) -> list[tuple[Any, ...]]:
        now = time.time_ns() // 1_000_000
        if self.protocol == "af":
            return [(self.key, now, "wkr_ceiling", json.dumps(activity()))]
        message_id = str(uuid.uuid4())
        rows = []
        for _ in range(self.batch):
            payload = json.dumps(agui(message_id), separators=(",", ":"))
            rows.append((self.key, self.next_event, "TEXT_MESSAGE_CONTENT", now, payload))
            self.next_event += 1
        return rows


def sqlite_ceiling(child: Child, path: str, lanes: list[Rows], until: float) -> list[int]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    sql = _sql(AF_SQL if lanes[0].protocol == "af" else VF_SQL, "qmark")
    latencies: list[int] = []
    try:
        while time.monotonic() < until and not child.stop.is_set():
            for lane in lanes:  # the lanes take turns: one connection, one writer
                rows = lane.next()
                started = time.perf_counter_ns()
                conn.execute("BEGIN")
                if lane.protocol == "af":
                    conn.execute(sql, rows[0]).fetchone()
                else:
                    conn.executemany(sql, rows)
                conn.execute("COMMIT")
                latencies.append((time.perf_counter_ns() - started) // 1000)
                child.completed()
    finally:
        conn.close()
    return latencies


async def pg_ceiling(child: Child, dsn: str, lanes: list[Rows], until: float) -> list[int]:
    import asyncpg

    sql = _sql(AF_SQL if lanes[0].protocol == "af" else VF_SQL, "numeric")
    pool = await asyncpg.create_pool(dsn, min_size=PG_POOL, max_size=PG_POOL)
    latencies: list[int] = []

    async def lane_loop(lane: Rows) -> None:
        while time.monotonic() < until and not child.stop.is_set():
            rows = lane.next()
            started = time.perf_counter_ns()
            async with pool.acquire() as conn, conn.transaction():
                if lane.protocol == "af":
                    await conn.fetchval(sql, *rows[0])
                else:
                    await conn.executemany(sql, rows)
            latencies.append((time.perf_counter_ns() - started) // 1000)
            child.completed()

    try:
        await asyncio.gather(*(lane_loop(lane) for lane in lanes))
    finally:
        await pool.close()
    return latencies


async def ceiling_main(child: Child) -> dict[str, Any]:
    args = child.args
    lanes = [Rows(args["protocol"], n, int(args["batch"])) for n in range(int(args["lanes"]))]
    dsn = args.get("dsn")
    await child.ready()
    until = time.monotonic() + float(args["seconds"])
    if dsn:
        latencies = await pg_ceiling(child, dsn, lanes, until)
    else:
        latencies = await asyncio.to_thread(sqlite_ceiling, child, args["sqlite"], lanes, until)
    return {"events": len(latencies) * int(args["batch"]), "latencies_us": latencies}


async def child_main(child: Child) -> dict[str, Any]:
    return await (http_main if child.args["mode"] == "http" else ceiling_main)(child)


if __name__ == "__main__":
    run_child(child_main)
