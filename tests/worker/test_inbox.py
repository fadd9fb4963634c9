"""The operator's stop and prompt reach the agent through the worker: `stop` ends the agent
(SIGTERM, then SIGKILL after the grace) and the session stays `stopped`; a directive goes
to a running Claude Code on its stdin, and waits for the run's end (then runs as a follow-up)
with Codex and plain commands. Each handled message is acknowledged."""

from __future__ import annotations

import time

from shopfloor.client import OperatorClient
from tests.worker.conftest import (
    PLAIN,
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


def _acked(operator: OperatorClient, session_id: str) -> list[str]:
    return [m["type"] for m in operator.session_inbox(session_id) if m.get("ackedAt")]


def test_stop_from_the_operator_ends_the_agent(workers: Workers, operator: OperatorClient) -> None:
    worker = workers.start(agent="claude")
    sid = create(operator, "sleep:60")
    wait_status(operator, sid, "running")
    run = wait_for(lambda: agent_runs(worker.agent_log, sid), what="the agent to start")[0]
    started = time.monotonic()
    operator.stop_session(sid, "wrong branch")
    wait_for(lambda: not alive(run["pid"]), 15, "the agent to end")
    assert time.monotonic() - started < 10
    wait_for(lambda: _acked(operator, sid) == ["stop"], 15, "the stop to be acknowledged")
    session = operator.get_session(sid)
    assert session["status"] == "stopped"
    assert session["history"][-1]["reason"] == "wrong branch"

    # The worker's own account of the ending arrives after the session ended: kept as late.
    def late() -> list[dict[str, object]]:
        return [e["data"] for e in timeline(operator, sid) if e["type"] == "late"]

    # (It may have seen the stop on the session's status before the stop message came.)
    wait_for(
        lambda: any(d["kind"] == "progress" and d["milestone"] == "stopped" for d in late()),
        what="the worker's late report",
    )
    # The worker goes on serving.
    nxt = create(operator, "next one")
    assert wait_ended(operator, nxt)["status"] == "completed"
    assert worker.stop() == 0


def test_an_agent_that_ignores_the_stop_is_killed_after_the_grace(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start(agent=PLAIN)  # --stop-grace 1
    sid = create(operator, "ignore-term")
    wait_status(operator, sid, "running")
    run = wait_for(lambda: agent_runs(worker.agent_log, sid), what="the agent to start")[0]
    wait_for(
        lambda: any("ignoring SIGTERM" in a["content"] for a in activities(operator, sid)),
        what="the agent to arm itself",
    )
    operator.stop_session(sid)
    wait_for(lambda: not alive(run["pid"]), 15, "the agent to be killed")
    assert operator.get_session(sid)["status"] == "stopped"
    assert worker.stop() == 0


def test_a_directive_reaches_a_running_claude_on_its_stdin(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start(agent="claude")
    sid = create(operator, "first task sleep:4")
    wait_status(operator, sid, "running")
    wait_for(lambda: agent_runs(worker.agent_log, sid), what="the agent to start")
    operator.prompt_session(sid, "also update the changelog")
    session = wait_ended(operator, sid)
    assert session["status"] == "completed", worker.log()
    runs = agent_runs(worker.agent_log, sid)
    # One process took both messages, in order.
    assert {r["pid"] for r in runs} == {runs[0]["pid"]}
    assert runs[-1]["prompts"] == ["first task sleep:4", "also update the changelog"]
    assert _acked(operator, sid) == ["directive"]
    # Cost is cumulative in Claude Code's result; tokens add up over the turns.
    assert session["totalCostUsd"] == 0.025
    assert session["inputTokens"] == 300 and session["outputTokens"] == 80
    summary = [e for e in timeline(operator, sid) if e["type"] == "completion"]
    assert summary[0]["data"]["summary"] == "Done (turn 2): also update the changelog"
    assert worker.stop() == 0


def test_a_directive_for_codex_runs_as_a_follow_up_of_its_thread(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start(agent="codex")
    sid = create(operator, "first task sleep:4")
    wait_status(operator, sid, "running")
    wait_for(lambda: agent_runs(worker.agent_log, sid), what="the agent to start")
    operator.prompt_session(sid, "and write the tests")
    session = wait_ended(operator, sid)
    assert session["status"] == "completed", worker.log()
    first, follow_up = agent_runs(worker.agent_log, sid)
    assert first["pid"] != follow_up["pid"]
    assert follow_up["argv"] == [
        "exec",
        "--json",
        "--sandbox",
        "workspace-write",
        "resume",
        session["providerSessionId"],
        "and write the tests",
    ]
    assert follow_up["resume"] == session["providerSessionId"]
    assert _acked(operator, sid) == ["directive"]
    assert session["inputTokens"] == 4000 and session["outputTokens"] == 600
    assert worker.stop() == 0


def test_a_plain_command_runs_again_with_the_directive_and_a_nudge_is_acknowledged(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start(agent=PLAIN)
    sid = create(operator, "first task sleep:4")
    wait_status(operator, sid, "running")
    wait_for(lambda: agent_runs(worker.agent_log, sid), what="the agent to start")
    operator.nudge_session(sid, "still there?")
    operator.prompt_session(sid, "one more thing")
    session = wait_ended(operator, sid)
    assert session["status"] == "completed", worker.log()
    assert [r["prompts"] for r in agent_runs(worker.agent_log, sid)] == [
        ["first task sleep:4"],
        ["one more thing"],
    ]
    assert sorted(_acked(operator, sid)) == ["directive", "nudge"]
    assert worker.stop() == 0
