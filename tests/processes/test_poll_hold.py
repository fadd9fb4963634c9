"""Held AgentFactory polls against a real server process, over real sockets: a held poll
claims what arrives, and one whose client hung up claims nothing."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, WORKER_KEY, Backend
from tests.processes.server import ServerProcess, server_env, start_server, stop_cleanly

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WORKER = {"Authorization": f"Bearer {WORKER_KEY}"}


@pytest.fixture
def holding_server(backend: Backend, tmp_path: Path) -> Iterator[ServerProcess]:
    env = server_env(backend, tmp_path / "data", SHOPFLOOR_POLL_HOLD_MS="30000")
    proc = start_server(env, tmp_path / "server.log")
    yield proc
    stop_cleanly(proc)


def open_poll(server: ServerProcess, worker_id: str) -> socket.socket:
    """Send a poll on a raw connection and leave its answer unread."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    request = (
        f"GET /api/workers/{worker_id}/poll HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {WORKER_KEY}\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


def read_reply(sock: socket.socket) -> dict[str, Any]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    reply: dict[str, Any] = json.loads(body)
    return reply


def test_a_held_poll_claims_for_a_connected_client_only(holding_server: ServerProcess) -> None:
    with httpx.Client(base_url=holding_server.url, timeout=60) as http:

        def register() -> str:
            body = {"hostname": "h", "capacity": 1}
            worker_id: str = http.post("/api/workers/register", json=body, headers=WORKER).json()[
                "workerId"
            ]
            return worker_id

        def enqueue() -> str:
            reply = http.post("/api/v1/sessions", json={"prompt": "x"}, headers=ADMIN)
            session_id: str = reply.json()["sessionId"]
            return session_id

        # A held poll is answered with the session enqueued while it waits.
        first = register()
        held = open_poll(holding_server, first)
        time.sleep(0.5)  # the server has read the poll and holds it
        arrived = enqueue()
        reply = read_reply(held)
        assert reply["claimedSessionIds"] == [arrived] and reply["preClaimed"] is True

        # A poll whose client hung up while held does not claim what arrives after.
        gone = register()
        held = open_poll(holding_server, gone)
        time.sleep(0.5)
        held.close()
        time.sleep(0.5)  # the server has seen the connection close
        later = enqueue()
        view = http.get(f"/api/v1/sessions/{later}", headers=ADMIN).json()
        assert view["status"] == "pending", view
        taker = register()
        taken = http.get(f"/api/workers/{taker}/poll", headers=WORKER).json()
        assert taken["claimedSessionIds"] == [later]
        history = http.get(f"/api/v1/sessions/{later}", headers=ADMIN).json()["history"]
        assert {h["workerId"] for h in history if h["status"] == "claimed"} == {taker}
