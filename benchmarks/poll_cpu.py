"""Server CPU per empty long poll, against the bare endpoint's CPU per request, measured in
the same run: a small harness for work on the poll path, robust to a shared machine (it
divides the server's own CPU time, from psutil, by the requests it answered).

    python -m benchmarks.poll_cpu --backend sqlite --workers 300 --seconds 10
    python -m benchmarks.poll_cpu --workers 300 --profile /tmp/poll.prof   # cProfile

The fleet is benchmarks/idle_envapi.py's long-polling workers (no work is ever offered, so
every poll ends empty after its block time); the bare endpoint is benchmarks/ceiling.py's
app under `--ceiling-conns` keep-alive connections."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.ceiling import bare_cpu_per_request
from benchmarks.common import CREW_PROCESSES, ROOT, Crew, raise_fd_limit, split
from benchmarks.server import shopfloor_server
from benchmarks.shopfloor_envapi import create_environment


async def fleet_cpu_per_poll(
    url: str, pid: int, workers: int, seconds: float, work_dir: Path, settle_s: float = 3.0
) -> dict[str, Any]:
    """Start `workers` idle long-pollers on a new environment, let them settle, then divide
    the server's CPU over `seconds` by the polls answered meanwhile."""
    env = await create_environment(url)
    counts = split(workers, CREW_PROCESSES)
    args = [
        {"url": url, "env": env, "workers": k, "mode": "idle", "first": sum(counts[:n]), "tick": 1}
        for n, k in enumerate(counts)
    ]
    crew = Crew("benchmarks.idle_envapi", args, work_dir / "logs")
    server = psutil.Process(pid)
    try:
        await asyncio.to_thread(crew.wait_ready, 300)
        crew.send("go")
        await asyncio.sleep(settle_s)
        crew.count("n")
        t0 = server.cpu_times()
        await asyncio.sleep(seconds)
        t1 = server.cpu_times()
        polls = crew.count("n")
        rss = server.memory_info().rss / 2**20
        crew.send("stop")
        finals = await asyncio.to_thread(crew.results)
    finally:
        crew.kill()
    return {
        "workers": workers,
        "polls_per_s": polls / seconds,
        "server_cpu_percent": 100 * (_cpu(t1) - _cpu(t0)) / seconds,
        "cpu_ms_per_poll": 1000 * (_cpu(t1) - _cpu(t0)) / max(polls, 1),
        "system_share": (t1.system - t0.system) / max(_cpu(t1) - _cpu(t0), 1e-9),
        "server_rss_mb": rss,
        "failed_requests": sum(int(f.get("errors", 0)) for f in finals),
    }


def _cpu(times: Any) -> float:
    return float(times.user + times.system)


async def profiled(backend: str, work_dir: Path, out: Path, workers: int, seconds: float) -> None:
    """The same fleet against a server running in-process under cProfile (SQLite only)."""
    if backend != "sqlite":
        raise SystemExit("--profile runs on SQLite only")
    proc, url = await asyncio.to_thread(start_profiled, work_dir, out, seconds)
    try:
        await _wait_up(url)
        print(json.dumps(await fleet_cpu_per_poll(url, proc.pid, workers, seconds + 6, work_dir)))
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)


def start_profiled(
    work_dir: Path, out: Path, seconds: float
) -> tuple[subprocess.Popen[bytes], str]:
    from benchmarks.server import ADMIN_KEY, WORKER_KEY
    from tests.conftest import Backend
    from tests.processes.server import free_port, server_env

    work_dir.mkdir(parents=True, exist_ok=True)
    spec = Backend("sqlite", f"sqlite:///{work_dir / 'shopfloor.db'}", None)
    env = server_env(
        spec,
        work_dir / "data",
        SHOPFLOOR_ADMIN_API_KEY=ADMIN_KEY,
        SHOPFLOOR_WORKER_API_KEY=WORKER_KEY,
        PROFILE_OUT=str(out),
        PROFILE_DELAY_S="8",
        PROFILE_SECONDS=str(seconds),
        PYTHONPATH=f"{ROOT / 'src'}:{ROOT}",
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.profiled_serve", str(port)],
        env=env,
        cwd=ROOT,
        stdout=(work_dir / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    return proc, f"http://127.0.0.1:{port}"


async def _wait_up(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url + "/healthz", timeout=1)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("profiled server did not come up")


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    work_dir = Path(tempfile.mkdtemp(prefix="shopfloor-pollcpu-"))
    if args.profile:
        await profiled(args.backend, work_dir, args.profile, args.workers, args.seconds)
        return
    async with shopfloor_server(args.backend, work_dir) as server:
        fleet = await fleet_cpu_per_poll(
            server.url, server.proc.pid, args.workers, args.seconds, work_dir
        )
    bare = await bare_cpu_per_request(work_dir / "ceiling", args.ceiling_conns, args.seconds)
    fleet["bare_cpu_ms_per_request"] = bare
    fleet["multiple_of_bare"] = fleet["cpu_ms_per_poll"] / bare
    fleet["load_average"] = [round(x, 2) for x in psutil.getloadavg()]
    print(json.dumps(fleet, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ceiling-conns", type=int, default=8)
    parser.add_argument("--profile", type=Path, help="cProfile the server into this file")
    asyncio.run(main(parser.parse_args()))
