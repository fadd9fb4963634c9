"""A credential change reaches rotate-stream subscribers on every server process (rensei-
platform.md §1.7-1.8): two `shopfloor serve` processes share one PostgreSQL; a daemon follows
its session's rotations on one, the operator stores a new value through the other. The stream
ends when the session does."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, Backend
from tests.processes.server import ServerProcess, server_env, start_server, stop_cleanly

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def follow(server: ServerProcess, session_id: str, seen: list[Any], ready: threading.Event) -> None:
    """Read the stream's UPDATE events into `seen` until it ends."""
    params = {"sessionId": session_id, "envName": "production"}
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream(
            "GET", "/api/daemon/credentials/rotate-stream", params=params, headers=ADMIN
        ) as stream,
    ):
        assert stream.status_code == 200, stream.read()
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line == ": stream open":
                ready.set()
            if line.startswith("data: "):
                seen.append(json.loads(line.removeprefix("data: ")))


def wait_for(seen: list[Any], count: int) -> None:
    deadline = threading.Event()
    for _ in range(200):
        if len(seen) >= count:
            return
        deadline.wait(0.05)
    raise AssertionError(f"{len(seen)} updates, expected {count}: {seen}")


@pytest.mark.slow
def test_a_rotation_reaches_the_subscriber_on_the_other_process(
    postgres: Backend, tmp_path: Path
) -> None:
    env = server_env(postgres, tmp_path / "data", SHOPFLOOR_STREAM_KEEPALIVE_SECONDS="1")
    one = start_server(env, tmp_path / "one.log")
    two = start_server(env, tmp_path / "two.log")
    try:
        with httpx.Client(base_url=one.url, headers=ADMIN, timeout=10) as a:
            org = a.post("/api/v1/orgs", json={"slug": "acme"}).json()["id"]
            a.post(f"/api/org/{org}/credentials", json={"name": "TOKEN", "value": "v1"})
            session = a.post(
                "/api/v1/sessions", json={"prompt": "p", "orgId": org, "projectName": "web"}
            ).json()["sessionId"]
            seen: list[Any] = []
            ready = threading.Event()
            reader = threading.Thread(target=follow, args=(two, session, seen, ready))
            reader.start()
            assert ready.wait(10)
            a.post(f"/api/org/{org}/credentials", json={"name": "TOKEN", "value": "v2"})
            wait_for(seen, 1)
            assert seen[0]["env"] == {"TOKEN": "v2"} and seen[0]["changed"] == ["TOKEN"]
            assert seen[0]["kind"] == "TOKEN"
            rotated = a.post("/api/daemon/credentials/rotate", json={"orgId": org, "kind": "gh"})
            assert rotated.json()["ok"] is True
            wait_for(seen, 2)
            assert seen[1]["env"] == {"TOKEN": "v2"} and seen[1]["changed"] == []
            # On its own process, the subscriber is counted.
            with httpx.Client(base_url=two.url, headers=ADMIN, timeout=10) as b:
                counted = b.post("/api/daemon/credentials/rotate", json={"orgId": org, "kind": "x"})
                assert counted.json()["sessionCount"] == 1
            a.post(f"/api/public/sessions/{session}/stop")
            reader.join(15)
            assert not reader.is_alive()
    finally:
        stop_cleanly(one)
        stop_cleanly(two)
