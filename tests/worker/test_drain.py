"""SIGTERM drains a worker: it takes no new work, lets running sessions finish up to its
drain timeout, hands back what is still running (the server requeues it with a recovery
packet), deregisters and exits 0."""

from __future__ import annotations

import signal
import time

from shopfloor.client import OperatorClient
from tests.worker.conftest import (
    Workers,
    agent_runs,
    alive,
    create,
    wait_ended,
    wait_for,
    wait_status,
)


def test_sigterm_lets_running_sessions_finish_and_takes_no_new_work(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start(agent="claude")
    running = create(operator, "finish me sleep:3")
    wait_status(operator, running, "running")
    worker_id = worker.worker_id()
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "draining" in worker.log(), what="the drain to begin")
    queued = create(operator, "not for a draining worker")
    assert worker.wait(30) == 0
    assert operator.get_session(running)["status"] == "completed"
    assert operator.get_session(queued)["status"] == "pending"
    assert agent_runs(worker.agent_log, queued) == []
    me = next(w for w in operator.list_workers() if w["workerId"] == worker_id)
    assert me["status"] == "deregistered"
    # Another worker takes what was left queued.
    other = workers.start(agent="claude")
    assert wait_ended(operator, queued)["status"] == "completed"
    assert other.stop() == 0


def test_sessions_still_running_at_the_drain_timeout_are_handed_back(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start("--drain-timeout", "1", agent="claude")
    sid = create(operator, "long job hang-once")
    wait_status(operator, sid, "running")
    run = wait_for(lambda: agent_runs(worker.agent_log, sid), what="the agent to start")[0]
    worker_id = worker.worker_id()
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert time.monotonic() - started < 10
    assert not alive(run["pid"])
    session = operator.get_session(sid)
    assert session["status"] == "pending"
    assert session["history"][-1]["reason"] == f"worker {worker_id} deregistered"
    assert len(operator.session_recovery(sid)["packets"]) == 1
    assert "handed back: " + sid in worker.log()
    # The next worker picks it up where it was left.
    other = workers.start(agent="claude")
    assert wait_ended(operator, sid)["status"] == "completed", other.log()
    prompt = agent_runs(other.agent_log, sid)[-1]["prompts"][0]
    assert f"Why it stopped: worker {worker_id} deregistered" in prompt
    assert other.stop() == 0


def test_a_second_signal_hands_back_at_once(workers: Workers, operator: OperatorClient) -> None:
    worker = workers.start(agent="claude")  # drain timeout 60 s
    sid = create(operator, "hang")
    wait_status(operator, sid, "running")
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "waiting up to 60s" in worker.log(), what="the drain to wait")
    worker.signal(signal.SIGINT)
    assert worker.wait(30) == 0
    assert time.monotonic() - started < 15
    assert operator.get_session(sid)["status"] == "pending"
