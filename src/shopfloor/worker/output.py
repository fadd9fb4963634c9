"""An agent's output, line by line, as AgentFactory activities (thought / action / response /
error) plus what the final status reports: provider session id, cost, tokens, summary, and
whether the agent itself said it failed.

Three dialects, told apart per line, so any command may speak any of them:

- Claude Code `--output-format stream-json`: `system` (subtype `init` carries
  `session_id`), `assistant` (`message.content`: `text`, `thinking`, `tool_use` blocks),
  `user` (`tool_result` blocks, `is_error`), `result` (`subtype`, `is_error`, `result`,
  `session_id`, `total_cost_usd` — cumulative over the process — and per-turn `usage`).
- Codex `exec --json`: `thread.started` (`thread_id`), `turn.started`, `turn.completed`
  (`usage`: `input_tokens`, `cached_input_tokens`, `output_tokens`), `turn.failed`
  (`error.message`), `item.started` / `item.updated` / `item.completed` (`item.type`:
  `agent_message`, `reasoning`, `plan`, `command_execution`, `file_change`, `mcp_tool_call`,
  `web_search`, `todo_list`, `error`), and `error` (`message`).
- Anything else is text: a stdout line is a `response`, a stderr line an `error`."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

CLAUDE_TYPES = frozenset({"system", "assistant", "user", "result", "stream_event"})
CODEX_PREFIXES = ("thread.", "turn.", "item.")
SUMMARY_LINES = 40
SUMMARY_CHARS = 8000


@dataclass
class Activity:
    type: str  # thought | action | response | error
    content: str
    tool_name: str | None = None
    tool_input: dict[str, Any] | None = None
    stream: str | None = None  # for text lines: which stream they came from


@dataclass
class RunReport:
    """What one agent process said about itself."""

    provider_session_id: str | None = None
    cost_usd: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    summary: str | None = None
    failure: str | None = None
    turns_done: int = 0  # results (Claude) or completed/failed turns (Codex)
    text_tail: deque[str] = field(default_factory=lambda: deque(maxlen=SUMMARY_LINES))
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=5))

    def final_summary(self) -> str | None:
        if self.summary:
            return self.summary
        text = "\n".join(self.text_tail).strip()
        return text[-SUMMARY_CHARS:] or None


class OutputParser:
    def __init__(self) -> None:
        self.report = RunReport()
        self._tool_names: dict[str, str] = {}
        self._announced: set[str] = set()  # Codex items already shown as an action

    def line(self, stream: str, text: str) -> list[Activity]:
        text = text.rstrip("\r\n")
        if not text.strip():
            return []
        event = _json_object(text) if text.lstrip().startswith("{") else None
        kind = event.get("type") if event is not None else None
        if isinstance(kind, str) and kind in CLAUDE_TYPES and event is not None:
            return self._claude(event)
        if (
            isinstance(kind, str)
            and event is not None
            and (kind.startswith(CODEX_PREFIXES) or kind == "error")
        ):
            return self._codex(kind, event)
        if stream == "stderr":
            self.report.stderr_tail.append(text)
            return [Activity("error", text, stream="stderr")]
        self.report.text_tail.append(text)
        return [Activity("response", text, stream="stdout")]

    # -- Claude Code --

    def _claude(self, event: dict[str, Any]) -> list[Activity]:
        kind = event["type"]
        session_id = event.get("session_id")
        if isinstance(session_id, str) and session_id:
            self.report.provider_session_id = session_id
        message = event.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if kind == "assistant" and isinstance(content, list):
            return [a for block in content if (a := self._claude_block(block)) is not None]
        if kind == "user" and isinstance(content, list):
            return [a for block in content if (a := self._claude_result(block)) is not None]
        if kind == "result":
            return self._claude_end(event)
        return []

    def _claude_block(self, block: Any) -> Activity | None:
        if not isinstance(block, dict):
            return None
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"].strip():
            return Activity("thought", block["text"])
        if kind == "thinking" and isinstance(block.get("thinking"), str):
            return Activity("thought", block["thinking"]) if block["thinking"].strip() else None
        if kind in ("tool_use", "server_tool_use") and isinstance(block.get("name"), str):
            name = block["name"]
            raw_input = block.get("input")
            tool_input: dict[str, Any] = raw_input if isinstance(raw_input, dict) else {}
            if isinstance(block.get("id"), str):
                self._tool_names[block["id"]] = name
            return Activity("action", describe_tool(name, tool_input), name, tool_input)
        return None

    def _claude_result(self, block: Any) -> Activity | None:
        """A tool's result shows on the timeline only when the tool failed."""
        if not isinstance(block, dict) or block.get("type") != "tool_result":
            return None
        if not block.get("is_error"):
            return None
        name = self._tool_names.get(str(block.get("tool_use_id")))
        return Activity("error", _text_of(block.get("content")) or "tool failed", name)

    def _claude_end(self, event: dict[str, Any]) -> list[Activity]:
        report = self.report
        report.turns_done += 1
        cost = event.get("total_cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            report.cost_usd = float(cost)
        usage = event.get("usage")
        if isinstance(usage, dict):
            report.input_tokens += sum(
                _int(usage.get(k))
                for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
            )
            report.output_tokens += _int(usage.get("output_tokens"))
        result = event.get("result") if isinstance(event.get("result"), str) else ""
        if event.get("is_error") or event.get("subtype") not in (None, "success"):
            why = result or f"the agent ended with {event.get('subtype') or 'an error'}"
            report.failure = why
            return [Activity("error", why)]
        if result:
            report.summary = result
            return [Activity("response", result)]
        return []

    # -- Codex --

    def _codex(self, kind: str, event: dict[str, Any]) -> list[Activity]:
        report = self.report
        if kind == "thread.started" and isinstance(event.get("thread_id"), str):
            report.provider_session_id = event["thread_id"]
        elif kind == "turn.completed":
            report.turns_done += 1
            usage = event.get("usage")
            if isinstance(usage, dict):
                report.input_tokens += _int(usage.get("input_tokens"))
                report.output_tokens += _int(usage.get("output_tokens"))
        elif kind in ("turn.failed", "error"):
            error = event.get("error") if kind == "turn.failed" else event
            message = error.get("message") if isinstance(error, dict) else None
            why = message if isinstance(message, str) and message else f"codex {kind}"
            if kind == "turn.failed":
                report.turns_done += 1
            report.failure = why
            return [Activity("error", why)]
        elif kind in ("item.started", "item.completed") and isinstance(event.get("item"), dict):
            return self._codex_item(event["item"], done=kind == "item.completed")
        return []

    def _codex_item(self, item: dict[str, Any], done: bool) -> list[Activity]:
        kind, item_id = item.get("type"), str(item.get("id"))
        tool = _codex_tool(item)
        out: list[Activity] = []
        if tool is not None and item_id not in self._announced:
            self._announced.add(item_id)
            name, tool_input = tool
            out.append(Activity("action", describe_tool(name, tool_input), name, tool_input))
        if not done:
            return out
        text = item.get("text") if isinstance(item.get("text"), str) else ""
        if kind == "agent_message" and text:
            self.report.summary = text
            out.append(Activity("response", text))
        elif kind in ("reasoning", "plan") and text:
            out.append(Activity("thought", text))
        elif kind == "todo_list" and isinstance(item.get("items"), list):
            lines = [
                ("[x] " if t.get("completed") else "[ ] ") + str(t.get("text"))
                for t in item["items"]
                if isinstance(t, dict)
            ]
            if lines:
                out.append(Activity("thought", "\n".join(lines)))
        elif kind == "error" and isinstance(item.get("message"), str):
            out.append(Activity("error", item["message"]))
        elif tool is not None and (failure := _codex_failure(item)) is not None:
            out.append(Activity("error", failure, tool[0]))
        return out


def _codex_tool(item: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The tool call an item stands for: its name and input."""
    kind = item.get("type")
    if kind == "command_execution":
        return "command_execution", {"command": item.get("command")}
    if kind == "file_change" and isinstance(item.get("changes"), list):
        return "file_change", {"changes": item["changes"]}
    if kind == "mcp_tool_call":
        raw_args = item.get("arguments")
        args: dict[str, Any] = raw_args if isinstance(raw_args, dict) else {}
        return f"{item.get('server')}.{item.get('tool')}", args
    if kind == "web_search":
        return "web_search", {"query": item.get("query")}
    return None


def _codex_failure(item: dict[str, Any]) -> str | None:
    if item.get("type") == "command_execution":
        code = item.get("exit_code")
        if item.get("status") in ("failed", "declined") or (isinstance(code, int) and code != 0):
            output = str(item.get("aggregated_output") or "").strip()
            return f"`{item.get('command')}` exited with {code}" + (
                f": {output[-2000:]}" if output else ""
            )
    error = item.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if item.get("status") == "failed":
        return f"{item.get('type')} failed"
    return None


def describe_tool(name: str, tool_input: dict[str, Any]) -> str:
    """A one-line description of a tool call, for the activity's content."""
    for key in ("command", "file_path", "path", "pattern", "query", "url", "description"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return f"{name}: {value}"
    if name == "file_change" and isinstance(tool_input.get("changes"), list):
        paths = [
            f"{c.get('kind')} {c.get('path')}" for c in tool_input["changes"] if isinstance(c, dict)
        ]
        return f"{name}: " + ", ".join(paths)
    return name


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(c.get("text")) for c in content if isinstance(c, dict) and c.get("text")
        )
    return ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: Any) -> int:
    return int(value) if _is_number(value) and value >= 0 else 0
