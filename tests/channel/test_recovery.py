"""Crash recovery over real processes: a worker killed mid-session is declared dead, its
session is requeued with a recovery packet, the next worker's work item points to it, and
the chain across several crashes is readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.channel.conftest import ROOT, Server, Worker, create_session, serve, wait_for
from tests.conftest import WORKER_KEY, Backend


@pytest.fixture
def fast_reaping_server(backend: Backend, tmp_path: Path) -> Iterator[Server]:
    # A worker silent for 1 s is dead; the reaper looks every 0.2 s.
    with serve(backend, tmp_path, "--worker-ttl", "1", "--reap-interval", "0.2") as srv:
        yield srv


def crash_a_worker(server: Server) -> tuple[str, str]:
    """Start a worker process, let it take a session and report work, then SIGKILL it."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("crashing_worker.py")),
            server.url,
            WORKER_KEY,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    sid, worker_id = proc.stdout.readline().split()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return sid, worker_id


def test_a_killed_workers_session_is_requeued_with_a_recovery_packet(
    fast_reaping_server: Server,
) -> None:
    server = fast_reaping_server
    admin = server.admin()
    sid = create_session(
        admin, issueId="iss-1", issueIdentifier="ENG-1", workType="development", priority=3
    )["sessionId"]
    crashed_sid, dead_worker = crash_a_worker(server)
    assert crashed_sid == sid

    def requeued() -> bool:
        return bool(admin.get(f"/api/v1/sessions/{sid}").json()["status"] == "pending")

    wait_for(requeued, what="the dead worker's session to be requeued")
    chain = admin.get(f"/api/v1/sessions/{sid}/recovery").json()["packets"]
    assert len(chain) == 1
    packet = chain[0]
    assert packet["attempt"] == 1 and packet["previousPacketId"] is None
    assert packet["workerId"] == dead_worker and packet["lastStatus"] == "running"
    assert packet["providerSessionId"] == f"prov-{dead_worker}"
    assert packet["worktreePath"] == f"/wt/{dead_worker}"
    assert packet["totalCostUsd"] == 0.25
    assert [a["content"] for a in packet["lastActivities"]] == ["read the code", "edit login.py"]
    assert [m["milestone"] for m in packet["milestones"]] == ["started"]
    assert "no heartbeat" in packet["reason"]

    # The next worker's work item points at the packet, and never resumes the dead provider.
    nxt = Worker(server.url)
    work = wait_for(lambda: nxt.poll()["work"], what="the requeued work")[0]
    assert work["sessionId"] == sid
    assert work["recoveryPacketId"] == packet["packetId"]
    assert work["recovery"]["worktreePath"] == f"/wt/{dead_worker}"
    assert work["recovery"]["attempt"] == 1
    assert "providerSessionId" not in work
    assert work["priority"] == 2  # moved up one
    latest = nxt.http.get(f"/api/sessions/{sid}/recovery").json()
    assert latest["found"] is True and latest["packet"]["packetId"] == packet["packetId"]
    nxt.close()  # this worker stops heartbeating too: it will be declared dead


def test_the_chain_across_several_crashes_is_readable(fast_reaping_server: Server) -> None:
    server = fast_reaping_server
    admin = server.admin()
    sid = create_session(admin)["sessionId"]
    dead = []
    for _ in range(2):
        crashed, worker_id = crash_a_worker(server)
        assert crashed == sid
        dead.append(worker_id)
        wait_for(
            lambda: admin.get(f"/api/v1/sessions/{sid}").json()["status"] == "pending",
            what="requeue",
        )
    packets = admin.get(f"/api/v1/sessions/{sid}/recovery").json()["packets"]
    assert [p["attempt"] for p in packets] == [1, 2]
    assert [p["workerId"] for p in packets] == dead
    assert packets[1]["previousPacketId"] == packets[0]["packetId"]
    # Worker-side routes: latest, the chain, and an explicit snapshot.
    worker = Worker(server.url)
    assert worker.http.get(f"/api/sessions/{sid}/recovery").json()["packet"]["attempt"] == 2
    chain = worker.http.get(f"/api/sessions/{sid}/recovery/chain").json()["packets"]
    assert [p["packetId"] for p in chain] == [p["packetId"] for p in packets]
    reply = worker.post(f"/api/sessions/{sid}/recovery", {"reason": "manual snapshot"})
    assert reply.status_code == 201 and reply.json()["packet"]["attempt"] == 3
    assert worker.http.get("/api/sessions/sess_nope/recovery").status_code == 404
    fresh = create_session(admin)["sessionId"]
    assert worker.http.get(f"/api/sessions/{fresh}/recovery").json() == {
        "sessionId": fresh,
        "found": False,
        "packet": None,
    }
