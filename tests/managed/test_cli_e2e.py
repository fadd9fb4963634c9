"""The CLI of managed sessions against a real server: `shopfloor agents create/list`, and
`shopfloor chat` creating a session, sending a message and following the turn live, with the
SDK's worker running the agent's tool call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ADMIN_KEY, Backend
from tests.managed.e2e import Rig, rig, sdk_worker
from tests.managed.fake_model import FakeModel, serve_fake_model, text, tool_calls

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("cli")
    with (
        serve_fake_model() as fake,
        rig(Backend("sqlite", f"sqlite:///{tmp / 'shopfloor.db'}", None), fake, tmp) as r,
    ):
        yield r


def cli(r: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPFLOOR_")}
    env.update(SHOPFLOOR_URL=r.url, SHOPFLOOR_ADMIN_API_KEY=ADMIN_KEY, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "shopfloor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_create_an_agent_and_chat_with_it(cli_rig: Rig, tmp_path: Path) -> None:
    r = cli_rig
    fake: FakeModel = r.fake
    system = fake.script(
        "cli",
        text("Hello from the agent."),
        tool_calls(("bash", {"command": "echo from-the-worker"})),
        text("The worker said it."),
    )
    made = cli(
        r,
        "agents",
        "create",
        "--name",
        "helper",
        "--model",
        "claude-test",
        "--system",
        system,
        "--json",
    )
    assert made.returncode == 0, made.stderr
    agent = json.loads(made.stdout)
    assert agent["tools"][0]["type"] == "agent_toolset_20260401"
    listed = cli(r, "agents", "list")
    assert agent["id"] in listed.stdout and "claude-test" in listed.stdout
    env_id, key = r.environment("cli")

    first = cli(r, "chat", "hi there", "--agent", agent["id"], "--environment", env_id)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("session sess_")
    session_id = lines[0].split()[1]
    assert "you: hi there" in lines
    assert "agent: Hello from the agent." in lines
    assert lines[-1] == "idle (end_turn)"

    with sdk_worker(r, "pinned", env_id, key, tmp_path / "work"):
        second = cli(r, "chat", "run something", "--session", session_id, "--json")
    assert second.returncode == 0, second.stdout + second.stderr
    events = [json.loads(line) for line in second.stdout.splitlines()]
    assert [e["type"] for e in events] == [
        "user.message",
        "session.status_running",
        "agent.tool_use",
        "session.status_idle",
        "user.tool_result",
        "session.status_running",
        "agent.message",
        "session.status_idle",
    ]
    assert events[4]["content"][0]["text"].strip() == "from-the-worker"

    refused = cli(r, "chat", "x", "--session", "sess_" + "0" * 32)
    assert refused.returncode == 1 and "404" in refused.stdout
    neither = cli(r, "chat", "x")
    assert neither.returncode == 2
