"""The server's own overhead per tool round trip of a managed session, both ways, with a
stand-in model that answers at once (so nothing but shopfloor is measured):

- **result to model call**: from a tool result being posted to the next model call arriving
  at the model (the POST, its write, the turn lease, the transcript read and the Messages API
  request through the `anthropic` client);
- **reply to tool_use**: from the model's reply being written to the `agent.tool_use` event
  it asks for reaching the worker's event stream (the reply read and parsed, the events
  written, the stream woken and the event delivered).

    python -m benchmarks.managed_roundtrip                  # SQLite, 15 sessions x 20
    python -m benchmarks.managed_roundtrip --backend postgres --sessions 30 --out results.json

Also the `managed-*` workloads of scripts/bench.sh (`run`). Sessions one after another, each
of ROUNDS tool round trips (the model asks for one bash call per turn, then ends); this
script plays the worker, reading the calls from the session's event stream (as the SDK's
worker does) and posting a result for each. The first session warms up and is not counted.

The overhead grows with a session's transcript: every model call sends the whole
conversation, which the `anthropic` client copies and serializes per request."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import Config, percentile
from benchmarks.server import ADMIN_KEY, shopfloor_server

ROUNDS = 20
SESSIONS = 15


async def measure(backend: str, sessions: int, work_dir: Path) -> dict[str, Any]:
    from tests.managed.fake_model import serve_fake_model, text, tool_calls

    with serve_fake_model() as fake:

        def step(body: dict[str, Any]) -> dict[str, Any]:
            done = sum(1 for m in body["messages"] if m["role"] == "assistant")
            if done >= ROUNDS:
                return text("finished")
            return tool_calls(("bash", {"command": f"echo {done}"}))

        system = fake.script("bench", *([step] * (ROUNDS + 1)))
        settings = {
            "SHOPFLOOR_MODEL_BASE_URL": fake.url,
            "SHOPFLOOR_MODEL_API_KEY": "bench-model-key",
            "SHOPFLOOR_LOG_LEVEL": "warning",
        }
        async with shopfloor_server(backend, work_dir, **settings) as server:
            headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
            async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as c:
                env = await c.post(
                    "/v1/environments", json={"name": "bench", "config": {"type": "self_hosted"}}
                )
                agent = await c.post(
                    "/v1/agents",
                    json={
                        "name": "bench",
                        "model": "bench-model",
                        "system": system,
                        "tools": [{"type": "agent_toolset_20260401"}],
                    },
                )
                gaps: list[float] = []
                replies: list[float] = []
                for n in range(sessions + 1):
                    found = await _session(c, fake, env.json()["id"], agent.json()["id"])
                    if n:  # the first one warms up
                        gaps += found[0]
                        replies += found[1]
    gaps_ms = [g * 1000 for g in gaps]
    replies_ms = [g * 1000 for g in replies]
    return {
        "backend": backend,
        "sessions": sessions,
        "round_trips_per_session": ROUNDS,
        "rounds": len(gaps_ms),
        "p50_ms": percentile(gaps_ms, 0.50),
        "p90_ms": percentile(gaps_ms, 0.90),
        "p99_ms": percentile(gaps_ms, 0.99),
        "max_ms": max(gaps_ms),
        "reply_p50_ms": percentile(replies_ms, 0.50),
        "reply_p90_ms": percentile(replies_ms, 0.90),
        "reply_p99_ms": percentile(replies_ms, 0.99),
        "reply_max_ms": max(replies_ms),
    }


async def run(cfg: Config, backend: str, work_dir: Path) -> dict[str, Any]:
    """The harness's workload: `cfg.managed_sessions` sessions on `backend`."""
    result = await measure(backend, cfg.managed_sessions, work_dir)
    return {k: v for k, v in result.items() if k != "backend"}


async def _session(
    c: httpx.AsyncClient, fake: Any, env_id: str, agent_id: str
) -> tuple[list[float], list[float]]:
    """One session's round trips: seconds from each posted result to the next model call,
    and from each model reply to its agent.tool_use on the stream."""
    created = await c.post("/v1/sessions", json={"agent": agent_id, "environment_id": env_id})
    sid = created.json()["id"]
    gaps: list[float] = []
    replies: list[float] = []
    async with c.stream("GET", f"/v1/sessions/{sid}/events/stream", timeout=None) as stream:
        message = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}
        await c.post(f"/v1/sessions/{sid}/events", json={"events": [message]})
        async for line in stream.aiter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line.removeprefix("data: "))
            if (
                event["type"] == "session.status_idle"
                and event["stop_reason"]["type"] == "end_turn"
            ):
                break
            if event["type"] != "agent.tool_use":
                continue
            replies.append(time.perf_counter() - _last_answer(fake))
            seen = len(fake.requests)
            result = {
                "type": "user.tool_result",
                "tool_use_id": event["id"],
                "is_error": False,
                "content": [{"type": "text", "text": "ok\n"}],
            }
            posted = time.perf_counter()
            r = await c.post(f"/v1/sessions/{sid}/events", json={"events": [result]})
            r.raise_for_status()
            arrived = await _next_request(fake, seen)
            gaps.append(arrived - posted)
    if len(gaps) != ROUNDS:
        raise RuntimeError(f"{len(gaps)} round trips of {ROUNDS}")
    return gaps, replies


def _last_answer(fake: Any) -> float:
    """When the model's latest reply was written (one session runs at a time, so the
    latest request is the one whose reply asked for the tool call just seen)."""
    with fake.lock:
        answered = fake.requests[-1].answered_at
    if answered is None:
        raise RuntimeError("a tool_use arrived before the model's reply was written")
    return float(answered)


async def _next_request(fake: Any, seen: int) -> float:
    """When the model got its next request (the stand-in's own arrival time)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with fake.lock:
            if len(fake.requests) > seen:
                return float(fake.requests[seen].at)
        await asyncio.sleep(0.0005)
    raise RuntimeError("the next model call never came")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="managed-bench-") as tmp:
        result = asyncio.run(measure(args.backend, args.sessions, Path(tmp)))
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
