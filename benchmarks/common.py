"""What every workload shares: the run configuration, the job payload, latency statistics,
the Postgres/Redis addresses, and the parent/child protocol of load-generator processes.

Load-generator processes ("crews") are started with `python -m <workload module> <json args>`.
Each one prints `{"ready": true}` once it is connected and registered, waits for `go` on
stdin, then either drains the queue and prints its final JSON line (drain mode), or runs
until `stop` arrives, printing `{"c": <latency ns>}` for every job it claims (paced mode)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The database servers' process names, for their CPU time (database_cpu_seconds).
POSTGRES = "postgres"
REDIS = "redis-server"
PG_DSN = os.environ.get("BENCH_PG_URL", "postgresql://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
ROOT = Path(__file__).resolve().parent.parent
CREW_PROCESSES = 2  # one load process per core


class Skip(Exception):
    """A workload that cannot run here; the reason goes into the results and the table."""


@dataclass(frozen=True)
class Config:
    jobs: int = 10_000  # N: sessions/jobs enqueued, then drained
    workers: int = 32  # K: concurrent workers across all load processes
    paced_jobs: int = 500  # jobs enqueued one at a time for the latency phase
    paced_rate: float = 100.0  # jobs/s offered during the latency phase
    idle_workers: int = 1000
    idle_seconds: float = 30.0
    idle_jobs: int = 300
    ceiling_seconds: float = 10.0
    ingest_sessions: int = 64  # K: sessions streaming events at once (event_ingest)
    ingest_seconds: float = 8.0  # each ingestion phase, and each of its ceilings
    fanout_watchers: int = 1000  # W: live SSE watchers (fanout)
    fanout_sessions: int = 100  # S: the runs they watch, W/S each
    # events/s appended over all S runs: 10 watchers each make 10 x that in deliveries/s; at
    # 50/s this shared machine fell behind (p50 4.4 s), so the default is what it keeps up with
    fanout_rate: float = 10.0
    fanout_seconds: float = 10.0
    managed_sessions: int = 15  # managed sessions of 20 tool round trips each (managed_roundtrip)
    # pollInterval the shopfloor server hands AgentFactory workers (the protocol's default;
    # the smoke run shortens it only so that it finishes quickly).
    poll_interval_ms: int = 5000
    # How long the server holds an idle AgentFactory worker's empty poll for work to arrive
    # (SHOPFLOOR_POLL_HOLD_MS; the server's default).
    poll_hold_ms: int = 1000
    runs: int = 3
    smoke: bool = False

    @classmethod
    def smoke_config(cls) -> Config:
        return cls(
            jobs=200,
            workers=8,
            paced_jobs=20,
            paced_rate=50.0,
            idle_workers=40,
            idle_seconds=3.0,
            idle_jobs=10,
            ceiling_seconds=1.0,
            ingest_sessions=8,
            ingest_seconds=0.5,
            fanout_watchers=20,
            fanout_sessions=4,
            fanout_rate=20.0,
            fanout_seconds=1.0,
            managed_sessions=2,
            poll_interval_ms=250,
            runs=1,
            smoke=True,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def af_settings(self) -> dict[str, str]:
        """The server settings of the AgentFactory workloads."""
        return {
            "SHOPFLOOR_POLL_INTERVAL_MS": str(self.poll_interval_ms),
            "SHOPFLOOR_POLL_HOLD_MS": str(self.poll_hold_ms),
        }


# -- the job --

PAD = "x" * 48


def payload(i: int) -> dict[str, Any]:
    """The same ~100-byte JSON payload for every system. `enq_ts` is wall-clock ns taken by
    the enqueuer just before it sends the job; workers subtract it from their claim time."""
    return {"i": i, "enq_ts": time.time_ns(), "pad": PAD}


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if p < total % parts else 0) for p in range(parts)]


# -- statistics --


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def latency_summary(latencies_ns: list[int]) -> dict[str, float | None]:
    ms = [v / 1e6 for v in latencies_ns]
    return {
        "latency_p50_ms": percentile(ms, 0.50),
        "latency_p99_ms": percentile(ms, 0.99),
        "latency_max_ms": max(ms) if ms else None,
        "latency_samples": len(ms),
    }


async def paced(count: int, rate: float, send: Callable[[int], Coroutine[Any, Any, None]]) -> float:
    """Call send(i) for i in range(count) at `rate` per second on a fixed schedule (sends are
    not awaited one after another, so a slow enqueue does not slow the offered load)."""
    start = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - start


async def bounded(count: int, concurrency: int, send: Callable[[int], Awaitable[None]]) -> float:
    """Call send(i) for i in range(count) with at most `concurrency` in flight; seconds taken."""
    start = time.perf_counter()
    counter = iter(range(count))

    async def lane() -> None:
        for i in counter:
            await send(i)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - start


# -- parent side of the crew protocol --


class Crew:
    """CREW_PROCESSES load processes running `python -m module` with per-process args."""

    def __init__(self, module: str, args: list[dict[str, Any]], log_dir: Path) -> None:
        self.events: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
        self.procs: list[subprocess.Popen[str]] = []
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for n, a in enumerate(args):
            err = (log_dir / f"{module.rsplit('.', 1)[-1]}-{n}.log").open("w")
            proc = subprocess.Popen(
                [sys.executable, "-m", module, json.dumps(a)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
                cwd=ROOT,
            )
            self.procs.append(proc)
            threading.Thread(target=self._pump, args=(n, proc), daemon=True).start()
        self.finals: dict[int, dict[str, Any]] = {}

    def _pump(self, n: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                self.events.put((n, json.loads(line)))
        self.events.put((n, {"eof": True, "rc": proc.wait()}))

    def _next(self, deadline: float) -> tuple[int, dict[str, Any]]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("load processes did not answer in time")
        try:
            return self.events.get(timeout=left)
        except queue.Empty:
            raise TimeoutError("load processes did not answer in time") from None

    def _handle(self, n: int, event: dict[str, Any]) -> None:
        if "final" in event:
            self.finals[n] = event["final"]
        elif "eof" in event and n not in self.finals:
            raise RuntimeError(f"load process {n} exited ({event['rc']}) without a result")

    def wait_ready(self, timeout: float = 120) -> None:
        ready: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(ready) < len(self.procs):
            n, event = self._next(deadline)
            if event.get("ready"):
                ready.add(n)
            else:
                self._handle(n, event)

    def send(self, line: str) -> int:
        now = time.time_ns()
        for proc in self.procs:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(line + "\n")
                proc.stdin.flush()
        return now

    def collect_claims(self, count: int, timeout: float, partial: bool = False) -> list[int]:
        """Latencies (ns) of the next `count` claims reported by the crew in paced mode;
        with `partial`, whatever arrived before the timeout."""
        got: list[int] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            try:
                n, event = self._next(deadline)
            except TimeoutError:
                if partial:
                    return got
                raise
            if "c" in event:
                got.append(int(event["c"]))
            else:
                self._handle(n, event)
        return got

    def count(self, key: str) -> int:
        """The sum of `key` over the counts the crew reported since the last call (the
        other events are handled as results() would); does not wait."""
        total = 0
        while True:
            try:
                n, event = self.events.get_nowait()
            except queue.Empty:
                return total
            if key in event:
                total += int(event[key])
            else:
                self._handle(n, event)

    def results(self, timeout: float = 600) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.finals) < len(self.procs):
            n, event = self._next(deadline)
            self._handle(n, event)
        for proc in self.procs:
            proc.wait(timeout=30)
        return [self.finals[n] for n in sorted(self.finals)]

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def paced_latency(
    cfg: Config,
    module: str,
    args: list[dict[str, Any]],
    work_dir: Path,
    send: Callable[[int], Coroutine[Any, Any, None]],
) -> dict[str, Any]:
    """Start a crew in paced mode, offer cfg.paced_jobs at cfg.paced_rate through `send`,
    one at a time, and summarise the claim latencies the crew reports."""
    crew = Crew(module, args, work_dir / "logs")
    lock = asyncio.Lock()

    async def one(i: int) -> None:
        async with lock:  # one connection, one enqueue at a time
            await send(i)

    try:
        await asyncio.to_thread(crew.wait_ready)
        crew.send("go")
        timeout = 120 + cfg.paced_jobs / cfg.paced_rate
        claims = asyncio.create_task(
            asyncio.to_thread(crew.collect_claims, cfg.paced_jobs, timeout)
        )
        await paced(cfg.paced_jobs, cfg.paced_rate, one)
        latencies = await claims
        crew.send("stop")
        await asyncio.to_thread(crew.results)
    finally:
        crew.kill()
    return latency_summary(latencies)


class DatabaseCpu:
    """CPU time (user + system) of every process called `name` (a database server's
    backends and background processes) while the `with` block runs, in `seconds`.
    Sampled every 0.1 s (a sample took 1.5 ms of CPU here), since the backends of the peers'
    workers exit as their crews finish, before the block ends: a process that exits keeps
    what was last sampled, so this can under-count by up to 0.1 s of CPU per such process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seconds = 0.0
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DatabaseCpu:
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self._sample(first=False)
        self.seconds = sum(cpu - self._first.get(pid, 0.0) for pid, cpu in self._last.items())

    def _run(self) -> None:
        while not self._done.wait(0.1):
            self._sample(first=False)

    def _sample(self, first: bool) -> None:
        import psutil

        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] != self.name:
                continue
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                self._last[proc.pid] = times.user + times.system
                if first:
                    self._first[proc.pid] = self._last[proc.pid]


def drain_result(jobs: int, go_ns: int, finals: list[dict[str, Any]]) -> dict[str, Any]:
    """Drain rate: N / (last job finished - go). `processed` must equal N for a valid run."""
    processed = sum(int(f["count"]) for f in finals)
    end_ns = max(int(f["end_ns"]) for f in finals)
    seconds = (end_ns - go_ns) / 1e9
    if processed != jobs:
        raise RuntimeError(f"processed {processed} of {jobs} jobs")
    return {"drain_seconds": seconds, "drain_jobs_per_s": jobs / seconds, "processed": processed}


# -- child side of the crew protocol --


class Child:
    def __init__(self) -> None:
        self.args: dict[str, Any] = json.loads(sys.argv[1])
        self.stop = asyncio.Event()
        self._go = asyncio.Event()
        self.last_done = 0

    def emit(self, event: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    async def ready(self) -> None:
        """Tell the parent we are set up, then wait for `go`; `stop` may follow later."""
        loop = asyncio.get_running_loop()

        def read() -> None:
            for line in sys.stdin:
                word = line.strip()
                if word == "go":
                    loop.call_soon_threadsafe(self._go.set)
                elif word == "stop":
                    loop.call_soon_threadsafe(self.stop.set)
            loop.call_soon_threadsafe(self.stop.set)

        threading.Thread(target=read, daemon=True).start()
        self.emit({"ready": True})
        await self._go.wait()

    def completed(self) -> None:
        """Record that a job finished (the drain ends at the latest of these)."""
        self.last_done = time.time_ns()

    def claimed(self, enq_ts: int) -> int:
        """Record a claim of a job enqueued at `enq_ts`; returns the latency in ns."""
        lat = time.time_ns() - enq_ts
        if self.args.get("mode") == "paced":
            self.emit({"c": lat})
        return lat

    def finish(self, result: dict[str, Any]) -> None:
        self.emit({"final": {**result, "end_ns": self.last_done or time.time_ns()}})


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's open-file limit (RLIMIT_NOFILE) to its hard limit, which the
    processes it starts inherit: the server and every load process hold one descriptor per
    connection. Returns (soft, hard) as they now are."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def run_child(main: Callable[[Child], Awaitable[dict[str, Any]]]) -> None:
    raise_fd_limit()
    child = Child()

    async def body() -> None:
        result = await main(child)
        child.finish(result)

    try:
        import uvloop

        uvloop.run(body())
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(body())


def jitter(interval_s: float) -> float:
    """The AgentFactory client's wait: interval + 0..40 % of it."""
    return interval_s * (1 + random.random() * 0.4)


# -- Postgres --


async def fresh_pg_database(name: str) -> str:
    """Drop and create database `name` on the benchmark Postgres; returns its URL."""
    import asyncpg

    conn = await asyncpg.connect(PG_DSN, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_DSN.rsplit("/", 1)[0] + "/" + name


async def drop_pg_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
