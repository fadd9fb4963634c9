"""Fan-out: W live watchers over S runs while events stream into them.

Setup: S Veryfront runs, each admitted to and leased by a worker of its own (as in
event_ingest). The load processes then open W SSE streams (`GET /runs/{run}/events` with
`Accept: text/event-stream`, the operator's key), W/S per run, and report ready once every
stream has answered. The server's RSS is read before and after they connect, and its CPU
over an idle stretch with all of them connected. Then the harness appends events one at a
time at `fanout_rate` per second, round robin over the runs, each through its run's worker;
each event carries `t`, the writer's wall clock (ns) taken just before it sends the append.
Every watcher records, for every event it receives, its own wall clock minus `t` (same
machine, same clock): the time from the append being sent to the event reaching that
watcher. The append's own round trip (which ends after the commit) is recorded too, so
"append sent to watcher" is an upper bound of "commit to watcher" by at most that round
trip. A run is valid only if every watcher received every event of its run.

With `processes` > 1 (`shopfloor serve --processes N`, PostgreSQL) the kernel hands each
connection to one of the server's processes. The harness finds, from the server's open
sockets, which process holds each watcher and each append's connection (read twice a second
while appending), and reports the share of deliveries whose watcher sits on another process
than the append that caused it (the event then travels by LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CREW_PROCESSES,
    Child,
    Config,
    Crew,
    paced,
    percentile,
    run_child,
    split,
)
from benchmarks.event_ingest import TEXT, setup_vf
from benchmarks.http import HttpConn
from benchmarks.server import (
    ADMIN_KEY,
    cpu_seconds,
    rss_mb,
    serving_processes,
    shopfloor_server,
)

IDLE_SECONDS = 3.0  # the stretch with every watcher connected and nothing appended


async def run(cfg: Config, backend: str, work_dir: Path, processes: int = 1) -> dict[str, Any]:
    watchers, sessions = cfg.fanout_watchers, cfg.fanout_sessions
    settings = {"SHOPFLOOR_PROCESSES": str(processes)} if processes > 1 else {}
    async with shopfloor_server(backend, work_dir, **settings) as server:
        lanes = await setup_vf(server.url, sessions)
        runs = [lane["run"] for lane in lanes]
        per_process = split(watchers, CREW_PROCESSES)
        assignment = [runs[n % sessions] for n in range(watchers)]
        args, at = [], 0
        for count in per_process:
            args.append({"url": server.url, "runs": assignment[at : at + count]})
            at += count
        rss0 = rss_mb(server)
        crew = Crew(__name__, args, work_dir / "logs")
        writers = [
            HttpConn.for_url(server.url, {"Authorization": f"Bearer {lane['token']}"})
            for lane in lanes
        ]
        locks = [asyncio.Lock() for _ in lanes]
        round_trips: list[float] = []
        append_ports: list[tuple[int, int | None]] = []  # (run index, client port) per append
        placed: dict[int, int] = {}  # client port -> server pid (processes > 1)
        try:
            await asyncio.to_thread(crew.wait_ready, 300)
            if processes > 1:
                placed.update(await asyncio.to_thread(serving_processes, server))
            rss1 = rss_mb(server)
            cpu0 = cpu_seconds(server)
            await asyncio.sleep(IDLE_SECONDS)
            idle_cpu = cpu_seconds(server) - cpu0
            crew.send("go")
            count = max(sessions, round(cfg.fanout_rate * cfg.fanout_seconds))

            async def append(i: int) -> None:
                lane, conn = lanes[i % sessions], writers[i % sessions]
                async with locks[i % sessions]:  # one request at a time per connection
                    await _append(lane, conn)
                    append_ports.append((i % sessions, conn.local_port))

            async def place_appends() -> None:  # an idle connection closes after 5 s
                while True:
                    await asyncio.sleep(0.5)
                    placed.update(await asyncio.to_thread(serving_processes, server))

            async def _append(lane: dict[str, Any], conn: HttpConn) -> None:
                event = {
                    "type": "TEXT_MESSAGE_CONTENT",
                    "messageId": str(uuid.uuid4()),
                    "delta": TEXT,
                    "t": time.time_ns(),
                }
                started = time.perf_counter()
                path = f"/conversations/{lane['conversation']}/runs/{lane['run']}/events"
                await conn.call("POST", path, {"events": [event]})
                round_trips.append((time.perf_counter() - started) * 1000)

            cpu1, started = cpu_seconds(server), time.perf_counter()
            placing = asyncio.create_task(place_appends()) if processes > 1 else None
            await paced(count, cfg.fanout_rate, append)
            if placing is not None:
                placing.cancel()
                placed.update(await asyncio.to_thread(serving_processes, server))
            per_run = split(count, sessions)  # events of run r: per_run[r]
            expected = sum(per_run[n % sessions] for n in range(watchers))
            got, deadline = 0, time.monotonic() + 60
            while got < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                got += await asyncio.to_thread(crew.count, "d")
            busy_cpu = cpu_seconds(server) - cpu1
            seconds = time.perf_counter() - started  # the appends and their last delivery
            rss2 = rss_mb(server)
            crew.send("stop")
            finals = await asyncio.to_thread(crew.results)
        finally:
            crew.kill()
            for conn in writers:
                await conn.close()
    latencies_ms = [us / 1000 for f in finals for us in f["latencies_us"]]
    delivered = sum(int(f["delivered"]) for f in finals)
    if delivered != expected:
        raise RuntimeError(f"delivered {delivered} of {expected} events to watchers")
    per_k = 1000 / watchers
    extra = {}
    if processes > 1:
        watcher_pids = [placed.get(port) for f in finals for port in f["ports"]]
        watcher_runs = [run_id for f in finals for run_id in f["runs"]]
        extra = {
            "processes": processes,
            "cross_process_share": _cross_share(
                runs, watcher_runs, watcher_pids, append_ports, placed
            ),
            "watchers_per_process": sorted(
                sum(1 for p in watcher_pids if p == pid) for pid in set(watcher_pids)
            ),
        }
    return {
        "watchers": watchers,
        "sessions": sessions,
        "events_appended": count,
        "deliveries_per_s": delivered / seconds,
        "p50_ms": percentile(latencies_ms, 0.50),
        "p99_ms": percentile(latencies_ms, 0.99),
        "append_p50_ms": percentile(round_trips, 0.50),
        "append_p99_ms": percentile(round_trips, 0.99),
        "rss_before_mb": rss0,
        "rss_added_per_1000_mb": (max(rss1, rss2) - rss0) * per_k,
        "idle_cpu_percent_per_1000": 100 * idle_cpu / IDLE_SECONDS * per_k,
        "server_cpu_percent": 100 * busy_cpu / seconds,
        "server_cpu_percent_per_1000": 100 * busy_cpu / seconds * per_k,
        **extra,
    }


def _cross_share(
    runs: list[str],
    watcher_runs: list[str],
    watcher_pids: list[int | None],
    append_ports: list[tuple[int, int | None]],
    placed: dict[int, int],
) -> float | None:
    """The share of deliveries (append x watcher of its run) whose watcher's server process
    is not the one that took the append; None if no delivery could be placed."""
    by_run: dict[str, list[int | None]] = {}
    for run_id, pid in zip(watcher_runs, watcher_pids, strict=True):
        by_run.setdefault(run_id, []).append(pid)
    cross = total = 0
    for lane, port in append_ports:
        writer = placed.get(port) if port is not None else None
        if writer is None:
            continue
        for pid in by_run.get(runs[lane], []):
            if pid is not None:
                total += 1
                cross += pid != writer
    return cross / total if total else None


# -- the load process: SSE watchers --


class Watcher:
    def __init__(self, url: str, run_id: str, counter: list[int]) -> None:
        hostport = url.split("://", 1)[1].rstrip("/")
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.run_id = run_id
        self.connected = asyncio.Event()
        self.latencies_us: list[int] = []
        self.writer: asyncio.StreamWriter | None = None
        self.local_port = 0
        self.counter = counter  # deliveries not yet reported to the harness

    async def watch(self, child: Child) -> None:
        reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.local_port = int(self.writer.get_extra_info("sockname")[1])
        self.writer.write(
            f"GET /runs/{self.run_id}/events HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {ADMIN_KEY}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"watcher of {self.run_id}: {status!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # headers; the body is chunked: chunk sizes are lines that are not `data:`
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"retry:"):
                self.connected.set()
            elif line.startswith(b"data: "):
                now = time.time_ns()
                event = json.loads(line[6:])
                payload = event["payload"]
                if isinstance(payload, str):
                    payload = json.loads(payload)
                self.latencies_us.append((now - int(payload["t"])) // 1000)
                self.counter[0] += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def child_main(child: Child) -> dict[str, Any]:
    counter = [0]
    watchers = [Watcher(child.args["url"], run_id, counter) for run_id in child.args["runs"]]
    tasks = [asyncio.create_task(w.watch(child)) for w in watchers]
    for w in watchers:
        await w.connected.wait()
    await child.ready()
    while not child.stop.is_set():  # report deliveries every 0.1 s, not one line each
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(child.stop.wait(), 0.1)
        if counter[0]:
            child.emit({"d": counter[0]})
            counter[0] = 0
    for w in watchers:
        w.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = [us for w in watchers for us in w.latencies_us]
    return {
        "delivered": len(latencies),
        "latencies_us": latencies,
        "ports": [w.local_port for w in watchers],
        "runs": [w.run_id for w in watchers],
    }


if __name__ == "__main__":
    run_child(child_main)
