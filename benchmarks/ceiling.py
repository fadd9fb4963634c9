"""The ceiling: requests/s of a bare FastAPI/uvicorn JSON endpoint on this machine.

Server: `uvicorn benchmarks.ceiling_app:app` with uvloop and httptools (as `shopfloor serve`),
one process. Load: the same crew layout and HTTP client as the shopfloor drain, K keep-alive
connections alternating `GET /poll` and `POST /status`, for a fixed time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import CREW_PROCESSES, ROOT, Child, Config, Crew, run_child, split
from benchmarks.http import HttpConn


def start_ceiling(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    from tests.processes.server import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "benchmarks.ceiling_app:app", "--port", str(port)]
    cmd += ["--loop", "uvloop", "--http", "httptools", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ceiling server exited: {log_path.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("ceiling server did not come up")


async def run(cfg: Config, work_dir: Path) -> dict[str, Any]:
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    proc, url = await asyncio.to_thread(start_ceiling, work_dir / "ceiling.log")
    try:
        args = [
            {"url": url, "workers": k, "seconds": cfg.ceiling_seconds}
            for k in split(cfg.workers, CREW_PROCESSES)
        ]
        crew = Crew(__name__, args, work_dir / "logs")
        try:
            await asyncio.to_thread(crew.wait_ready)
            go = crew.send("go")
            finals = await asyncio.to_thread(crew.results)
        finally:
            crew.kill()
        seconds = (max(int(f["end_ns"]) for f in finals) - go) / 1e9
        return {"requests_per_s": sum(int(f["count"]) for f in finals) / seconds}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def bare_cpu_per_request(work_dir: Path, connections: int, seconds: float) -> float:
    """The bare endpoint's server CPU per request (ms), from its process CPU time over
    `seconds` of `connections` keep-alive connections sending requests back to back: the
    yardstick for what shopfloor spends on a request of its own."""
    import psutil

    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    proc, url = await asyncio.to_thread(start_ceiling, work_dir / "ceiling.log")
    try:
        args = [
            {"url": url, "workers": k, "seconds": seconds}
            for k in split(connections, CREW_PROCESSES)
        ]
        crew = Crew(__name__, args, work_dir / "logs")
        server = psutil.Process(proc.pid)
        try:
            await asyncio.to_thread(crew.wait_ready)
            before = server.cpu_times()
            crew.send("go")
            finals = await asyncio.to_thread(crew.results)
            after = server.cpu_times()
        finally:
            crew.kill()
        cpu = (after.user + after.system) - (before.user + before.system)
        print(
            f"  bare endpoint: system share {(after.system - before.system) / max(cpu, 1e-9):.2f}",
            file=sys.stderr,
        )
        return 1000 * cpu / max(sum(int(f["count"]) for f in finals), 1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def hammer(conn: HttpConn, until: float) -> None:
    body = {"workerId": "wkr_0123456789abcdef", "status": "completed"}
    while time.monotonic() < until:
        await conn.call("GET", "/poll")
        await conn.call("POST", "/status", body)


async def child_main(child: Child) -> dict[str, Any]:
    conns = [HttpConn.for_url(child.args["url"]) for _ in range(child.args["workers"])]
    for conn in conns:
        await conn.call("GET", "/healthz")
        conn.requests = 0
    await child.ready()
    until = time.monotonic() + child.args["seconds"]
    await asyncio.gather(*(hammer(c, until) for c in conns))
    child.completed()
    for conn in conns:
        await conn.close()
    return {"count": sum(c.requests for c in conns)}


if __name__ == "__main__":
    run_child(child_main)
