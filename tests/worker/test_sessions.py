"""Sessions run end to end by real `shopfloor worker` processes against a real server: each
agent dialect's output becomes the session's activities, and its cost, tokens, provider
session id and summary reach the final status."""

from __future__ import annotations

import subprocess
from pathlib import Path

from shopfloor.client import OperatorClient
from tests.worker.conftest import (
    PLAIN,
    Workers,
    activities,
    agent_runs,
    create,
    timeline,
    wait_ended,
    wait_for,
)


def test_claude_session_completes_with_its_activities(
    workers: Workers, operator: OperatorClient, repo: Path
) -> None:
    worker = workers.start(agent="claude")
    sid = create(operator, "Fix the login form", issueIdentifier="ENG-1", workType="research")
    session = wait_ended(operator, sid)
    assert session["status"] == "completed", worker.log()
    assert session["workerId"] == worker.worker_id()
    # What Claude Code's stream-json said: its session id, its cost, its tokens.
    runs = agent_runs(worker.agent_log, sid)
    assert len(runs) == 1 and runs[0]["prompts"] == ["Fix the login form"]
    assert runs[0]["argv"] == [
        "-p",
        "--verbose",
        "--output-format",
        "stream-json",
        "--input-format",
        "stream-json",
    ]
    assert session["providerSessionId"] and len(session["providerSessionId"]) == 36
    assert session["totalCostUsd"] == 0.0125
    assert session["inputTokens"] == 150 and session["outputTokens"] == 40  # input incl. cache
    # Its steps on the timeline: a thought, the Bash call with its input, the answer.
    acts = activities(operator, sid)
    assert {"type": "thought", "content": "Looking into: Fix the login form"} in acts
    bash = next(a for a in acts if a["type"] == "action")
    assert bash["toolName"] == "Bash"
    assert bash["toolInput"] == {"command": "ls -la", "description": "List files"}
    assert bash["content"] == "Bash: ls -la"
    assert acts[-1] == {"type": "response", "content": "Done (turn 1): Fix the login form"}
    # The af-worker's order of reports.
    kinds = [
        (e["type"], e.get("status") or (e.get("data") or {}).get("milestone"))
        for e in timeline(operator, sid)
        if e["type"] in ("status", "progress", "completion")
    ]
    assert kinds == [
        ("status", "pending"),
        ("status", "claimed"),
        ("status", "running"),
        ("progress", "claimed"),
        ("progress", "started"),
        ("completion", None),
        ("status", "finalizing"),
        ("progress", "completed"),
        ("status", "completed"),
    ]
    # One worktree on its own branch; removed once completed and clean, the branch kept.
    worktree = Path(runs[0]["cwd"])
    assert worktree == Path(session["worktreePath"])
    assert worktree.parent == worker.work_dir.resolve() / "worktrees"
    assert not worktree.exists()
    branches = subprocess.run(
        ["git", "branch", "--list", "shopfloor/*"], cwd=repo, capture_output=True, text=True
    ).stdout
    assert f"shopfloor/{sid}" in branches
    # The agent saw none of the worker's credentials.
    assert runs[0]["leaked"] == []
    assert worker.stop() == 0


def test_codex_session_reports_tokens_and_its_tool_calls(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start(agent="codex")
    sid = create(operator, "Tidy the notes")
    session = wait_ended(operator, sid)
    assert session["status"] == "completed", worker.log()
    run = agent_runs(worker.agent_log, sid)[0]
    assert run["argv"] == ["exec", "--json", "--sandbox", "workspace-write", "Tidy the notes"]
    assert session["inputTokens"] == 2000 and session["outputTokens"] == 300
    assert session["totalCostUsd"] is None  # Codex reports no cost
    assert session["providerSessionId"]  # its thread id
    acts = activities(operator, sid)
    assert {"type": "thought", "content": "**Plan** look around"} in acts
    assert {
        "type": "action",
        "content": "command_execution: bash -lc ls",
        "toolName": "command_execution",
        "toolInput": {"command": "bash -lc ls"},
    } in acts
    assert {
        "type": "action",
        "content": "file_change: add notes.md",
        "toolName": "file_change",
        "toolInput": {"changes": [{"path": "notes.md", "kind": "add"}]},
    } in acts
    assert acts[-1] == {"type": "response", "content": "Codex did: Tidy the notes"}
    summary = [e for e in timeline(operator, sid) if e["type"] == "completion"]
    assert summary[0]["data"]["summary"] == "Codex did: Tidy the notes"
    assert worker.stop() == 0


def test_a_plain_command_gets_the_prompt_on_stdin_and_its_lines_become_activities(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start(agent=PLAIN)
    sid = create(operator, "Summarise the logs")
    session = wait_ended(operator, sid)
    assert session["status"] == "completed", worker.log()
    run = agent_runs(worker.agent_log, sid)[0]
    assert run["prompts"] == ["Summarise the logs"] and run["argv"] == []
    acts = activities(operator, sid)
    responses = "\n".join(a["content"] for a in acts if a["type"] == "response")
    assert "plain agent starting: Summarise the logs" in responses
    assert "plain agent done" in responses
    assert {"type": "error", "content": "plain agent: a warning on stderr"} in acts
    assert session["totalCostUsd"] is None and session["providerSessionId"] is None
    summary = [e for e in timeline(operator, sid) if e["type"] == "completion"]
    assert "plain agent done" in summary[0]["data"]["summary"]
    assert worker.stop() == 0


def test_each_work_type_runs_its_own_agent_with_placeholders_filled(
    workers: Workers, operator: OperatorClient
) -> None:
    template = f"{PLAIN} --issue {{issue}} --type {{work_type}} {{prompt}}"
    worker = workers.start("--agent-for", f"qa={template}", agent="codex")
    qa = create(operator, "Check the release", workType="qa", issueIdentifier="ENG-9")
    dev = create(operator, "Build the feature", workType="development")
    assert wait_ended(operator, qa)["status"] == "completed", worker.log()
    assert wait_ended(operator, dev)["status"] == "completed", worker.log()
    qa_run = agent_runs(worker.agent_log, qa)[0]
    assert qa_run["dialect"] == "plain"
    assert qa_run["argv"] == ["--issue", "ENG-9", "--type", "qa", "Check the release"]
    assert agent_runs(worker.agent_log, dev)[0]["dialect"] == "codex"
    assert worker.stop() == 0


def test_a_session_without_a_prompt_gets_its_issue(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start(agent=PLAIN)
    sid = operator.create_session(
        {"issueIdentifier": "ENG-3", "title": "Login fails", "description": "On Safari only."}
    )["sessionId"]
    assert wait_ended(operator, sid)["status"] == "completed", worker.log()
    assert agent_runs(worker.agent_log, sid)[0]["prompts"] == [
        "ENG-3: Login fails\n\nOn Safari only."
    ]
    assert worker.stop() == 0


def test_files_an_agent_edits_are_reserved_and_another_sessions_edit_is_flagged(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start(agent="claude")
    first = create(operator, "edit:src/app.py sleep:4", projectName="web")
    wait_for(
        lambda: any(a.get("toolName") == "Edit" for a in activities(operator, first)),
        what="the first edit",
    )
    second = create(operator, "edit:src/app.py", projectName="web")
    assert wait_ended(operator, second)["status"] == "completed", worker.log()
    assert {
        "type": "error",
        "content": f"src/app.py is reserved by session {first}",
    } in activities(operator, second)
    assert wait_ended(operator, first)["status"] == "completed"
    # Released when the session ended: a third edit of the file meets no reservation.
    third = create(operator, "edit:src/app.py", projectName="web")
    assert wait_ended(operator, third)["status"] == "completed"
    assert not any(a["type"] == "error" for a in activities(operator, third))
    assert worker.stop() == 0


def test_a_failed_tool_call_is_an_error_activity_naming_the_tool(
    workers: Workers, operator: OperatorClient
) -> None:
    worker = workers.start(agent="claude")
    sid = create(operator, "bad-tool")
    assert wait_ended(operator, sid)["status"] == "completed", worker.log()
    assert {"type": "error", "content": "ls: permission denied", "toolName": "Bash"} in (
        activities(operator, sid)
    )
    assert worker.stop() == 0
