"""The output parser and the command templates on their own (no processes): the event shapes
of Claude Code's stream-json and Codex's exec JSONL that the end-to-end tests' fake agents do
not all emit, and how each agent's command line is built."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shopfloor.worker.activities import MAX_TOOL_INPUT, ActivityStream, wire
from shopfloor.worker.agents import RunContext, launch, parse_agent, parse_agent_for
from shopfloor.worker.output import Activity, OutputParser


def feed(*events: dict[str, Any] | str, stream: str = "stdout") -> tuple[OutputParser, list[Any]]:
    parser = OutputParser()
    out = []
    for event in events:
        line = event if isinstance(event, str) else json.dumps(event)
        out.extend(parser.line(stream, line))
    return parser, out


def test_claude_tool_errors_name_their_tool_and_thinking_is_a_thought() -> None:
    parser, acts = feed(
        {"type": "system", "subtype": "init", "session_id": "abc", "tools": []},
        {
            "type": "assistant",
            "session_id": "abc",
            "message": {
                "model": "m",
                "content": [
                    {"type": "thinking", "thinking": "which file?", "signature": "s"},
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "Read",
                        "input": {"file_path": "a.py"},
                    },
                ],
            },
        },
        {
            "type": "user",
            "session_id": "abc",
            "message": {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "no such file"}],
                        "is_error": True,
                    }
                ],
            },
        },
        {
            "type": "result",
            "subtype": "error_max_turns",
            "is_error": False,
            "session_id": "abc",
            "num_turns": 9,
            "duration_ms": 1,
            "duration_api_ms": 1,
        },
    )
    assert [(a.type, a.content, a.tool_name) for a in acts] == [
        ("thought", "which file?", None),
        ("action", "Read: a.py", "Read"),
        ("error", "no such file", "Read"),
        ("error", "the agent ended with error_max_turns", None),
    ]
    assert parser.report.provider_session_id == "abc"
    assert parser.report.failure == "the agent ended with error_max_turns"
    assert parser.report.cost_usd is None and parser.report.turns_done == 1


def test_codex_failed_commands_mcp_calls_and_todo_lists() -> None:
    cmd = {"id": "i1", "type": "command_execution", "command": "pytest", "aggregated_output": ""}
    mcp = {
        "id": "i2",
        "type": "mcp_tool_call",
        "server": "github",
        "tool": "get_issue",
        "arguments": {"number": 7},
        "result": None,
        "error": {"message": "not found"},
        "status": "failed",
    }
    parser, acts = feed(
        {"type": "thread.started", "thread_id": "th-1"},
        {"type": "item.started", "item": {**cmd, "exit_code": None, "status": "in_progress"}},
        {
            "type": "item.completed",
            "item": {**cmd, "aggregated_output": "1 failed", "exit_code": 1, "status": "failed"},
        },
        {"type": "item.completed", "item": mcp},
        {
            "type": "item.completed",
            "item": {
                "id": "i3",
                "type": "todo_list",
                "items": [
                    {"text": "run tests", "completed": True},
                    {"text": "fix", "completed": False},
                ],
            },
        },
        {"type": "item.completed", "item": {"id": "i4", "type": "error", "message": "retrying"}},
        {"type": "error", "message": "stream error"},
    )
    assert [(a.type, a.content, a.tool_name) for a in acts] == [
        ("action", "command_execution: pytest", "command_execution"),
        ("error", "`pytest` exited with 1: 1 failed", "command_execution"),
        ("action", "github.get_issue", "github.get_issue"),
        ("error", "not found", "github.get_issue"),
        ("thought", "[x] run tests\n[ ] fix", None),
        ("error", "retrying", None),
        ("error", "stream error", None),
    ]
    assert acts[2].tool_input == {"number": 7}
    assert parser.report.provider_session_id == "th-1"
    assert parser.report.failure == "stream error"


def test_text_and_json_that_is_no_agent_event_are_plain_lines() -> None:
    parser, acts = feed('{"level": "info", "msg": "hi"}', "{not json", "", "done")
    assert [(a.type, a.content) for a in acts] == [
        ("response", '{"level": "info", "msg": "hi"}'),
        ("response", "{not json"),
        ("response", "done"),
    ]
    assert parser.report.final_summary() == '{"level": "info", "msg": "hi"}\n{not json\ndone'


def test_activities_merge_and_a_huge_tool_input_is_cut() -> None:
    posted: list[dict[str, Any]] = []
    stream = ActivityStream(lambda a: _record(posted, a))
    stream.add(Activity("thought", "one"))
    stream.add(Activity("thought", "two"))
    stream.add(Activity("action", "x", "Write", {"content": "y" * 50_000}))
    stream.add(Activity("response", "a", stream="stdout"))
    stream.add(Activity("error", "b", stream="stderr"))
    stream.add(Activity("response", "c", stream="stdout"))

    async def run() -> None:
        stream.close()
        await stream.run()

    asyncio.run(run())
    assert [(p["type"], p["content"]) for p in posted] == [
        ("thought", "one\ntwo"),
        ("action", "x"),
        ("response", "a"),
        ("error", "b"),
        ("response", "c"),
    ]
    cut = posted[1]["toolInput"]
    assert set(cut) == {"truncated"} and len(cut["truncated"]) == MAX_TOOL_INPUT
    assert len(json.dumps(wire(Activity("thought", "z" * 10**6)))) < 70_000


async def _record(posted: list[dict[str, Any]], activity: dict[str, Any]) -> None:
    posted.append(activity)


def test_command_lines_of_each_agent() -> None:
    ctx = RunContext("sess_1", Path("/wt/sess_1"), "qa", "ENG-1")
    claude = parse_agent("claude")
    first = launch(claude, ctx, "do it")
    assert first.argv[:2] == ["claude", "-p"] and first.stdin_json and first.stdin_text is None
    assert launch(claude, ctx, "more", "ses-9").argv[:3] == ["claude", "--resume", "ses-9"]
    codex = parse_agent("codex")
    assert launch(codex, ctx, "do it").argv == [
        "codex",
        "exec",
        "--json",
        "--sandbox",
        "workspace-write",
        "do it",
    ]
    assert launch(codex, ctx, "more", "th-1").argv[-3:] == ["resume", "th-1", "more"]
    own = parse_agent(
        "/opt/bin/agent --dir {worktree} --id={session_id} --note '{issue} {work_type}'"
    )
    built = launch(own, ctx, "{worktree} stays literal in a prompt")
    assert built.argv == [
        "/opt/bin/agent",
        "--dir",
        "/wt/sess_1",
        "--id=sess_1",
        "--note",
        "ENG-1 qa",
    ]
    assert built.stdin_text == "{worktree} stays literal in a prompt"
    assert built.env["SHOPFLOOR_SESSION_ID"] == "sess_1"
    with pytest.raises(ValueError, match="WORKTYPE=COMMAND"):
        parse_agent_for(["qa"])
    with pytest.raises(ValueError, match="empty"):
        parse_agent("  ")


def test_a_prompt_is_never_expanded_as_a_template() -> None:
    ctx = RunContext("s", Path("/wt"), None, None)
    built = launch(parse_agent("tool {prompt}"), ctx, "use {session_id} and {prompt}")
    assert built.argv == ["tool", "use {session_id} and {prompt}"]


def test_the_worker_imports_nothing_of_the_server() -> None:
    """The worker is an HTTP client: no service, store or api module is loaded with it."""
    probe = (
        "import sys, shopfloor.worker.cli, shopfloor.worker.daemon, shopfloor.client; "
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['shopfloor', 'service'], ['shopfloor', 'store'], ['shopfloor', 'api'])))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
