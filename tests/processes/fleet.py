"""A fleet of AgentFactory workers in one OS process, speaking HTTP to several servers.

    python -m tests.processes.fleet CONFIG_JSON

Each worker is an asyncio task: it registers, heartbeats, polls, and takes every session it is
handed through running -> finalizing -> completed. Requests go round-robin across the servers;
a request that fails on the wire (or with a 5xx) is retried on the next server. A 4xx on a
status report means the lease moved on (the session was requeued while the reply was lost):
the worker drops the session. Every acknowledged completion is written to the output file as
one JSON line. The fleet runs until the stop file appears."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


@dataclass(frozen=True)
class FleetConfig:
    servers: list[str]
    worker_key: str
    workers: int
    capacity: int
    first_index: int
    out: str
    stop_file: str
    heartbeat_seconds: float = 10.0
    idle_poll_seconds: float = 2.0


class Unavailable(Exception):
    pass


class Worker:
    def __init__(self, cfg: FleetConfig, index: int, client: httpx.AsyncClient) -> None:
        self.cfg = cfg
        self.index = index
        self.client = client
        self.turn = itertools.count(index)
        self.worker_id = ""
        self.records: list[dict[str, Any]] = []
        self.retries = 0

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request, moved to the next server until one answers without a 5xx."""
        headers = {"Authorization": f"Bearer {self.cfg.worker_key}"}
        deadline = time.monotonic() + 60
        while True:
            server = self.cfg.servers[next(self.turn) % len(self.cfg.servers)]
            try:
                reply = await self.client.request(method, server + path, json=body, headers=headers)
                if reply.status_code < 500:
                    return reply
            except httpx.TransportError:
                pass
            self.retries += 1
            if time.monotonic() > deadline:
                raise Unavailable(f"{method} {path}: no server answered")
            await asyncio.sleep(0.05)

    async def run(self, stop: asyncio.Event) -> None:
        reg = await self.call(
            "POST",
            "/api/workers/register",
            {
                "hostname": f"fleet-{self.cfg.first_index + self.index}",
                "capacity": self.cfg.capacity,
            },
        )
        assert reg.status_code == 201, reg.text
        self.worker_id = reg.json()["workerId"]
        beats = asyncio.create_task(self.heartbeat(stop))
        try:
            while not stop.is_set():
                polled = await self.call("GET", f"/api/workers/{self.worker_id}/poll")
                assert polled.status_code == 200, polled.text
                ids = polled.json()["claimedSessionIds"]
                if ids:
                    await asyncio.gather(*(self.work(sid) for sid in ids))
                else:
                    await asyncio.sleep(self.cfg.idle_poll_seconds * (0.5 + random.random()))
        finally:
            beats.cancel()

    async def heartbeat(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.cfg.heartbeat_seconds)
            await self.call("POST", f"/api/workers/{self.worker_id}/heartbeat", {"activeCount": 0})

    async def work(self, session_id: str) -> None:
        for status in ("running", "finalizing", "completed"):
            reply = await self.call(
                "POST",
                f"/api/sessions/{session_id}/status",
                {"workerId": self.worker_id, "status": status},
            )
            if reply.status_code != 200:
                self.records.append(
                    {"event": "dropped", "session": session_id, "worker": self.worker_id,
                     "at": status, "reply": reply.status_code}
                )  # fmt: skip
                return
            if status == "running":
                await asyncio.sleep(random.random() * 0.02)  # the agent's "work"
        self.records.append({"event": "completed", "session": session_id, "worker": self.worker_id})


async def watch_stop_file(path: Path, stop: asyncio.Event) -> None:
    while True:
        if path.exists():  # noqa: ASYNC240 (a stat call; the fleet only waits here)
            stop.set()
            return
        await asyncio.sleep(0.1)


async def main(cfg: FleetConfig) -> None:
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=cfg.workers * 3, max_keepalive_connections=cfg.workers)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, connect=5), limits=limits) as client:
        workers = [Worker(cfg, i, client) for i in range(cfg.workers)]
        watcher = asyncio.create_task(watch_stop_file(Path(cfg.stop_file), stop))
        results = await asyncio.gather(*(w.run(stop) for w in workers), return_exceptions=True)
        watcher.cancel()
    with open(cfg.out, "w") as out:  # noqa: ASYNC230 (the fleet is done)
        for w in workers:
            for record in w.records:
                out.write(json.dumps(record) + "\n")
        for w, result in zip(workers, results, strict=True):
            if isinstance(result, BaseException):
                out.write(json.dumps({"event": "crashed", "worker": w.worker_id,
                                      "error": repr(result)}) + "\n")  # fmt: skip
        retries = sum(w.retries for w in workers)
        out.write(json.dumps({"event": "summary", "retries": retries}) + "\n")


if __name__ == "__main__":
    asyncio.run(main(FleetConfig(**json.loads(sys.argv[1]))))
