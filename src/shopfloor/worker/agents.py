"""Agent commands: the CLI a session runs, per work type, and how a prompt reaches it.

A command is a template, split like a shell would split it, with placeholders `{prompt}`,
`{session_id}`, `{worktree}`, `{work_type}` and `{issue}` replaced in each word. Two names are
presets:

- `claude`: Claude Code headless, `claude -p --verbose --output-format stream-json
  --input-format stream-json`. The prompt is written to its stdin as a stream-json user
  message, and so is every directive that arrives while it runs (it accepts follow-up
  input); stdin is closed once it has answered every message.
- `codex`: `codex exec --json --sandbox workspace-write {prompt}`. It takes no input while it
  runs: directives wait for the run to end, then run as `codex exec … resume <thread id>`.

Any other command gets the prompt where `{prompt}` appears, else on stdin (then EOF). A
command whose program is `claude` or `codex` is treated as that agent (for follow-ups); any
other command's follow-up runs the same template again with the directive as its prompt,
and `SHOPFLOOR_RESUME_ID` set to the provider session id it reported, if any."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

PRESETS = {
    "claude": "claude -p --verbose --output-format stream-json --input-format stream-json",
    "codex": "codex exec --json --sandbox workspace-write {prompt}",
}
PROMPT = "{prompt}"
_PLACEHOLDER = re.compile(r"\{(?:prompt|session_id|worktree|work_type|issue)\}")


@dataclass(frozen=True)
class AgentCommand:
    template: tuple[str, ...]
    family: str  # claude | codex | command
    stdin_json: bool  # prompt and follow-ups as stream-json user messages on stdin

    @property
    def accepts_follow_up(self) -> bool:
        """Whether a directive can be handed to the agent while it runs."""
        return self.stdin_json

    @property
    def prompt_in_args(self) -> bool:
        return any(PROMPT in word for word in self.template)

    @property
    def program(self) -> str:
        return self.template[0]


def parse_agent(text: str) -> AgentCommand:
    """An agent command from `--agent`: a preset name or a command line."""
    words = shlex.split(PRESETS.get(text.strip(), text))
    if not words:
        raise ValueError("the agent command is empty")
    name = Path(words[0]).name
    family = name if name in ("claude", "codex") else "command"
    stdin_json = any(
        w == "--input-format=stream-json"
        or (w == "--input-format" and i + 1 < len(words) and words[i + 1] == "stream-json")
        for i, w in enumerate(words)
    )
    return AgentCommand(tuple(words), family, stdin_json)


@dataclass(frozen=True)
class AgentTable:
    """The agent of each work type, and the one for every other work type."""

    default: AgentCommand
    by_work_type: dict[str, AgentCommand] = field(default_factory=dict)

    def for_work(self, work_type: str | None) -> AgentCommand:
        return self.by_work_type.get(work_type or "", self.default)


def parse_agent_for(items: list[str]) -> dict[str, AgentCommand]:
    """`--agent-for WORKTYPE=COMMAND`, repeatable."""
    table: dict[str, AgentCommand] = {}
    for item in items:
        work_type, sep, command = item.partition("=")
        if not sep or not work_type.strip() or not command.strip():
            raise ValueError(f"{item!r} is not WORKTYPE=COMMAND")
        table[work_type.strip()] = parse_agent(command)
    return table


@dataclass(frozen=True)
class RunContext:
    session_id: str
    worktree: Path
    work_type: str | None
    issue: str | None
    # The session's MCP endpoint and its token (the agent's, never the worker's credential).
    mcp_url: str | None = None
    mcp_token: str | None = None


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    stdin_text: str | None  # written to stdin, then EOF (prompt-on-stdin commands)
    stdin_json: bool  # stdin stays open for stream-json user messages


# The worker's own settings, credentials among them, never reach an agent.
_PRIVATE_ENV_PREFIX = "SHOPFLOOR_"


def launch(
    agent: AgentCommand, ctx: RunContext, prompt: str, resume_id: str | None = None
) -> Launch:
    """The process to start for one run of `agent`: the first (`resume_id` None) or a
    follow-up of the provider session `resume_id`."""
    values = {
        PROMPT: prompt,
        "{session_id}": ctx.session_id,
        "{worktree}": str(ctx.worktree),
        "{work_type}": ctx.work_type or "",
        "{issue}": ctx.issue or "",
    }
    words = list(agent.template)
    stdin_text = None if agent.prompt_in_args or agent.stdin_json else prompt
    if resume_id and agent.family == "claude":
        words[1:1] = ["--resume", resume_id]
    elif resume_id and agent.family == "codex":
        # `codex exec [options] resume <id> [PROMPT]`; `-` reads the prompt from stdin.
        words = [w for w in words if PROMPT not in w]
        words += ["resume", resume_id, PROMPT if agent.prompt_in_args else "-"]
    argv = [_PLACEHOLDER.sub(lambda m: values[m.group(0)], w) for w in words]
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV_PREFIX)}
    env.update(
        {
            "SHOPFLOOR_SESSION_ID": ctx.session_id,
            "SHOPFLOOR_WORKTREE": str(ctx.worktree),
            "SHOPFLOOR_WORK_TYPE": ctx.work_type or "",
            "SHOPFLOOR_ISSUE": ctx.issue or "",
        }
    )
    if resume_id:
        env["SHOPFLOOR_RESUME_ID"] = resume_id
    if ctx.mcp_url and ctx.mcp_token:
        env["SHOPFLOOR_MCP_URL"] = ctx.mcp_url
        env["SHOPFLOOR_MCP_TOKEN"] = ctx.mcp_token
    return Launch(argv, env, stdin_text, agent.stdin_json)
