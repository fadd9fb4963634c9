"""A stand-in for the agent CLIs the worker runs (their models cannot run here). It speaks the
real output shapes of Claude Code (`-p --output-format stream-json`, optionally
`--input-format stream-json`) and of Codex (`exec --json`, `exec … resume <id>`), or plain
text, and behaves as its prompt says:

    sleep:S        wait S seconds mid-run          exit:N        fail with exit status N
    hang           never finish                    ignore-term   ignore SIGTERM (and hang)
    hang-once      hang unless its worktree has `progress.txt` from an earlier attempt
    flood:N        write N bytes of text lines     longline:N    one line of N bytes
    error-result   Claude's result says is_error   turn-fail     Codex's turn fails
    write:NAME     create NAME in the worktree     edit:NAME     (Claude) an Edit call on NAME
    bad-tool       (Claude) its tool call fails
    remember:TEXT  call af_memory_remember on its session's MCP endpoint ($SHOPFLOOR_MCP_URL,
                   $SHOPFLOOR_MCP_TOKEN) and log the reply as `mcp`

Every run appends a JSON line (argv, prompt(s), cwd, pid, session) to $FAKE_AGENT_LOG.

    python fake_agent.py claude|codex|plain [args as the real CLI takes them]
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any


def out(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def log_run(dialect: str, prompts: list[str], **extra: Any) -> None:
    path = os.environ.get("FAKE_AGENT_LOG")
    if not path:
        return
    line = {
        "dialect": dialect,
        "argv": sys.argv[2:],
        "prompts": prompts,
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "session": os.environ.get("SHOPFLOOR_SESSION_ID"),
        "resume": os.environ.get("SHOPFLOOR_RESUME_ID"),
        "leaked": sorted(k for k in os.environ if "KEY" in k and k.startswith("SHOPFLOOR")),
        **extra,
    }
    with open(path, "a") as fh:
        fh.write(json.dumps(line) + "\n")


def words(prompt: str) -> dict[str, str]:
    """The behaviours a prompt asks for: `word` or `word:value` (valued words need a value)."""
    found: dict[str, str] = {}
    for match in re.finditer(r"\b([a-z-]+)(?::(\S+))?", prompt):
        name, value = match.group(1), match.group(2) or ""
        if name in VALUED and not value:
            continue
        found.setdefault(name, value)
    return found


VALUED = {"sleep", "exit", "flood", "longline", "write", "edit", "remember"}


def remember(text: str) -> Any:
    """What an agent configured with its MCP endpoint does: one tools/call over HTTP."""
    import urllib.request

    url, token = os.environ.get("SHOPFLOOR_MCP_URL"), os.environ.get("SHOPFLOOR_MCP_TOKEN")
    if not url or not token:
        return {"missing": "SHOPFLOOR_MCP_URL or SHOPFLOOR_MCP_TOKEN"}
    call = {"name": "af_memory_remember", "arguments": {"content": text}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def behave_before(prompt: str) -> None:
    """Whatever the prompt asks for that happens mid-run."""
    w = words(prompt)
    if "write" in w:
        Path(w["write"]).write_text("written by the fake agent\n")
    if "remember" in w:
        log_run("mcp", [prompt], mcp=remember(w["remember"]))
    if "ignore-term" in w:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.stderr.write("fake agent: ignoring SIGTERM\n")
        sys.stderr.flush()
        hang()
    if "hang-once" in w:
        marker = Path("progress.txt")
        if not marker.exists():
            marker.write_text("step 1 done\n")
            hang()
    if "hang" in w:
        hang()
    if "flood" in w:
        flood(int(w["flood"]))
    if "longline" in w:
        sys.stdout.write("x" * int(w["longline"]) + "\n")
        sys.stdout.flush()
    if "sleep" in w:
        time.sleep(float(w["sleep"]))


def behave_after(prompt: str) -> None:
    w = words(prompt)
    if "exit" in w:
        sys.stderr.write(f"fake agent: failing with {w['exit']} on purpose\n")
        sys.stderr.flush()
        sys.exit(int(w["exit"]))


def hang() -> None:
    while True:
        time.sleep(3600)


def flood(size: int) -> None:
    line = ("flood " * 20 + "\n").encode()
    written = 0
    while written < size:
        os.write(1, line * 100)
        written += len(line) * 100


# -- Claude Code --


def claude(args: list[str]) -> None:
    resume = args[args.index("--resume") + 1] if "--resume" in args else None
    session_id = resume or str(uuid.uuid4())
    stream_input = "--input-format" in args and args[args.index("--input-format") + 1] == (
        "stream-json"
    )
    out(
        {
            "type": "system",
            "subtype": "init",
            "session_id": session_id,
            "cwd": os.getcwd(),
            "model": "claude-fake",
            "tools": ["Bash", "Read", "Edit"],
            "permissionMode": "default",
        }
    )
    if not stream_input:  # the prompt is the last argument
        prompt = args[-1]
        log_run("claude", [prompt], resume=resume)
        claude_turn(session_id, prompt, 1)
        return
    prompts: list[str] = []
    for raw in sys.stdin:
        frame = json.loads(raw)
        assert frame["type"] == "user" and frame["message"]["role"] == "user", frame
        content = frame["message"]["content"]
        prompt = content if isinstance(content, str) else content[0]["text"]
        prompts.append(prompt)
        log_run("claude", list(prompts), resume=resume)
        claude_turn(session_id, prompt, len(prompts))


def claude_turn(session_id: str, prompt: str, turn: int) -> None:
    msg_id = f"msg_{uuid.uuid4().hex[:12]}"
    tool_id = f"toolu_{uuid.uuid4().hex[:12]}"
    assistant = {"type": "assistant", "session_id": session_id, "parent_tool_use_id": None}
    out(
        {
            **assistant,
            "uuid": str(uuid.uuid4()),
            "message": {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": "claude-fake",
                "content": [{"type": "text", "text": f"Looking into: {prompt[-200:]}"}],
                "stop_reason": None,
                "usage": {"input_tokens": 10, "output_tokens": 5},
            },
        }
    )
    out(
        {
            **assistant,
            "uuid": str(uuid.uuid4()),
            "message": {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": "claude-fake",
                "content": [
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "Bash",
                        "input": {"command": "ls -la", "description": "List files"},
                    }
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 12, "output_tokens": 7},
            },
        }
    )
    if "edit" in words(prompt):
        target = os.path.join(os.getcwd(), words(prompt)["edit"])
        out(
            {
                **assistant,
                "uuid": str(uuid.uuid4()),
                "message": {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-fake",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": f"toolu_{uuid.uuid4().hex[:12]}",
                            "name": "Edit",
                            "input": {"file_path": target, "old_string": "a", "new_string": "b"},
                        }
                    ],
                },
            }
        )
    behave_before(prompt)
    failing = "bad-tool" in words(prompt)
    out(
        {
            "type": "user",
            "session_id": session_id,
            "parent_tool_use_id": None,
            "uuid": str(uuid.uuid4()),
            "message": {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "content": "ls: permission denied" if failing else "total 0",
                        "is_error": failing,
                    }
                ],
            },
        }
    )
    behave_after(prompt)
    error = "error-result" in words(prompt)
    out(
        {
            "type": "result",
            "subtype": "error_during_execution" if error else "success",
            "is_error": error,
            "duration_ms": 1200,
            "duration_api_ms": 1000,
            "num_turns": 2,
            "result": "The model gave up." if error else f"Done (turn {turn}): {prompt[-80:]}",
            "session_id": session_id,
            "total_cost_usd": round(0.0125 * turn, 6),
            "usage": {
                "input_tokens": 100,
                "cache_creation_input_tokens": 20,
                "cache_read_input_tokens": 30,
                "output_tokens": 40,
            },
            "permission_denials": [],
            "uuid": str(uuid.uuid4()),
        }
    )


# -- Codex --


def codex(args: list[str]) -> None:
    assert args[0] == "exec", args
    rest = args[1:]
    resume = None
    if "resume" in rest:
        at = rest.index("resume")
        resume = rest[at + 1]
        prompt = rest[at + 2] if len(rest) > at + 2 else "-"
    else:
        prompt = rest[-1] if rest and not rest[-1].startswith("-") else "-"
    if prompt == "-":
        prompt = sys.stdin.read()
    log_run("codex", [prompt], resume=resume)
    thread = resume or str(uuid.uuid4())
    out({"type": "thread.started", "thread_id": thread})
    out({"type": "turn.started"})
    out(
        {
            "type": "item.completed",
            "item": {"id": "item_0", "type": "reasoning", "text": "**Plan** look around"},
        }
    )
    cmd = {
        "id": "item_1",
        "type": "command_execution",
        "command": "bash -lc ls",
        "aggregated_output": "",
    }
    out({"type": "item.started", "item": {**cmd, "exit_code": None, "status": "in_progress"}})
    behave_before(prompt)
    out(
        {
            "type": "item.completed",
            "item": {
                **cmd,
                "aggregated_output": "README.md\n",
                "exit_code": 0,
                "status": "completed",
            },
        }
    )
    out(
        {
            "type": "item.completed",
            "item": {
                "id": "item_2",
                "type": "file_change",
                "changes": [{"path": "notes.md", "kind": "add"}],
                "status": "completed",
            },
        }
    )
    if "turn-fail" in words(prompt):
        out({"type": "turn.failed", "error": {"message": "stream disconnected before completion"}})
        sys.exit(1)
    behave_after(prompt)
    out(
        {
            "type": "item.completed",
            "item": {"id": "item_3", "type": "agent_message", "text": f"Codex did: {prompt[-80:]}"},
        }
    )
    out(
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 2000, "cached_input_tokens": 500, "output_tokens": 300},
        }
    )


# -- plain --


def plain(args: list[str]) -> None:
    prompt = args[-1] if args else sys.stdin.read()
    log_run("plain", [prompt])
    print(f"plain agent starting: {prompt[-100:]}", flush=True)
    sys.stderr.write("plain agent: a warning on stderr\n")
    sys.stderr.flush()
    behave_before(prompt)
    behave_after(prompt)
    print("plain agent done", flush=True)


if __name__ == "__main__":
    dialect, argv = sys.argv[1], sys.argv[2:]
    {"claude": claude, "codex": codex, "plain": plain}[dialect](argv)
