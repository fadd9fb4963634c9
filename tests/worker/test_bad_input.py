"""Agents that misbehave never take the worker down: the session fails with the reason, the
output it reads stays bounded, and the same worker goes on to complete the next session."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shopfloor.client import OperatorClient
from tests.worker.conftest import (
    PLAIN,
    Workers,
    activities,
    agent_runs,
    alive,
    create,
    wait_ended,
)


def _then_serves_on(worker_id: str, operator: OperatorClient) -> None:
    """The same worker completes a well-behaved session after the bad one."""
    ok = create(operator, "a normal task")
    session = wait_ended(operator, ok)
    assert session["status"] == "completed" and session["workerId"] == worker_id


def test_a_missing_command_fails_the_session(workers: Workers, operator: OperatorClient) -> None:
    worker = workers.start("--agent-for", "qa=no-such-agent-cli --go {prompt}", agent="claude")
    sid = create(operator, "check it", workType="qa")
    session = wait_ended(operator, sid)
    assert session["status"] == "failed"
    assert session["error"] == "agent command not found: no-such-agent-cli"
    _then_serves_on(worker.worker_id(), operator)
    assert worker.stop() == 0


@pytest.mark.parametrize(
    ("agent", "prompt", "error"),
    [
        (PLAIN, "exit:3", "the agent exited with code 3: fake agent: failing with 3 on purpose"),
        ("claude", "error-result", "The model gave up."),
        (
            "codex",
            "turn-fail",
            "the agent exited with code 1: stream disconnected before completion",
        ),
    ],
)
def test_a_failing_agent_fails_the_session_with_its_reason(
    workers: Workers, operator: OperatorClient, agent: str, prompt: str, error: str
) -> None:
    worker = workers.start(agent=agent)
    sid = create(operator, prompt)
    session = wait_ended(operator, sid)
    assert session["status"] == "failed" and session["error"] == error, worker.log()
    assert any(a["type"] == "error" for a in activities(operator, sid))
    _then_serves_on(worker.worker_id(), operator)
    assert worker.stop() == 0


def test_an_agent_past_its_time_limit_is_stopped_and_fails(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start("--time-limit", "2", agent="claude")
    started = time.monotonic()
    sid = create(operator, "hang")
    session = wait_ended(operator, sid)
    assert session["status"] == "failed"
    assert session["error"] == "the agent ran past its time limit of 2s"
    assert time.monotonic() - started < 15
    # The agent was killed (SIGTERM: it does not ignore that).
    pid = agent_runs(worker.agent_log, sid)[0]["pid"]
    assert not alive(pid)
    _then_serves_on(worker.worker_id(), operator)
    assert worker.stop() == 0


def test_an_agent_that_ignores_sigterm_is_killed_after_the_grace(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start("--time-limit", "2", agent=PLAIN)  # --stop-grace 1
    sid = create(operator, "ignore-term")
    session = wait_ended(operator, sid)
    assert session["status"] == "failed"
    assert session["error"] == "the agent ran past its time limit of 2s"
    assert not alive(agent_runs(worker.agent_log, sid)[0]["pid"])
    _then_serves_on(worker.worker_id(), operator)
    assert worker.stop() == 0


def test_an_output_flood_fails_the_session_and_what_is_posted_stays_bounded(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start("--max-output-bytes", "2000000", agent=PLAIN)
    sid = create(operator, "flood:50000000")
    session = wait_ended(operator, sid)
    assert session["status"] == "failed"
    assert session["error"] == "the agent wrote more than 2000000 bytes"
    assert not alive(agent_runs(worker.agent_log, sid)[0]["pid"])
    acts = activities(operator, sid)
    # Lines merge into activities of at most 16,000 characters; at most 200 wait at a time.
    assert all(len(a["content"]) <= 16_000 for a in acts)
    assert sum(len(a["content"]) for a in acts) < 2_000_000 * 1.1
    _then_serves_on(worker.worker_id(), operator)
    assert worker.stop() == 0


def test_a_huge_line_is_cut(workers: Workers, operator: OperatorClient) -> None:
    worker = workers.start(agent=PLAIN)
    sid = create(operator, "longline:3000000")
    session = wait_ended(operator, sid)
    assert session["status"] == "completed", worker.log()
    acts = activities(operator, sid)
    cut = [a for a in acts if a["content"].startswith("xxxx")]
    assert len(cut) == 1 and len(cut[0]["content"]) == 16_000
    assert cut[0]["content"].endswith("characters cut]")
    assert worker.stop() == 0


def test_a_repository_that_is_not_one_stops_the_worker_at_start(
    workers: Workers, tmp_path: Path
) -> None:
    plain_folder = tmp_path / "not-a-repo"
    plain_folder.mkdir()
    worker = workers.start("--repo", str(plain_folder), agent="claude")
    assert worker.wait(30) == 1
    assert "worker stopped: no repository for the worktrees: git rev-parse" in worker.log()
    assert "Traceback" not in worker.log()
