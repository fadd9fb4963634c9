"""A worker killed outright mid-session: its agent dies with it, the server declares it dead
after the worker TTL (3 heartbeat intervals) and requeues the session with a recovery
packet, and another worker finishes it, starting from the packet and the same worktree."""

from __future__ import annotations

import signal
from pathlib import Path

from shopfloor.client import OperatorClient
from tests.worker.conftest import (
    Workers,
    activities,
    agent_runs,
    alive,
    create,
    timeline,
    wait_ended,
    wait_for,
    wait_status,
)


def test_a_session_of_a_killed_worker_is_finished_by_another(
    workers: Workers, operator: OperatorClient
) -> None:
    doomed = workers.start(agent="claude")
    sid = create(operator, "Refactor the parser hang-once", issueIdentifier="ENG-5")
    wait_status(operator, sid, "running")
    first = wait_for(lambda: agent_runs(doomed.agent_log, sid), what="the agent to start")[0]
    worktree = Path(first["cwd"])
    wait_for(lambda: (worktree / "progress.txt").exists(), what="the first attempt's work")
    wait_for(
        lambda: any(a["type"] == "action" for a in activities(operator, sid)),
        what="the first attempt's steps on the timeline",
    )
    doomed_id = doomed.worker_id()
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    # The agent does not outlive its worker (PR_SET_PDEATHSIG).
    wait_for(lambda: not alive(first["pid"]), 10, "the orphaned agent to die")

    rescuer = workers.start(agent="claude")
    session = wait_ended(operator, sid)
    assert session["status"] == "completed", rescuer.log()
    assert session["workerId"] == rescuer.worker_id() != doomed_id
    history = [(h["status"], h["reason"]) for h in session["history"]]
    assert ("pending", f"worker {doomed_id} sent no heartbeat for 3s") in history
    # The second attempt ran in the same worktree (the first one's file is there) and was
    # told what happened before.
    second = agent_runs(rescuer.agent_log, sid)[-1]
    assert second["pid"] != first["pid"]
    assert Path(second["cwd"]) == worktree
    prompt = second["prompts"][0]
    assert prompt.startswith("This session was interrupted and is being resumed (attempt 1).")
    assert f"Why it stopped: worker {doomed_id} sent no heartbeat for 3s" in prompt
    assert "You are in the same worktree as the earlier attempt" in prompt
    assert "Milestones reached: claimed, started." in prompt
    assert "- action Bash: Bash: ls -la" in prompt
    assert prompt.endswith("The task:\n\nRefactor the parser hang-once")
    milestones = [
        e["data"]["milestone"] for e in timeline(operator, sid) if e["type"] == "progress"
    ]
    assert milestones == ["claimed", "started", "resumed", "started", "completed"]
    # Kept: a worktree that holds the first attempt's uncommitted file is not removed.
    assert worktree.exists()
    assert rescuer.stop() == 0
