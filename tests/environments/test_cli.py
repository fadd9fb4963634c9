"""`shopfloor environments create/list` and `shopfloor sessions create --environment` against a
real server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from tests.conftest import ADMIN_KEY
from tests.environments.conftest import Server


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopfloor", *args, "--url", server.url, "--admin-key", ADMIN_KEY],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},  # rich fits tables to the terminal width
    )


def test_environments_and_sessions_from_the_cli(server: Server) -> None:
    made = cli(
        server, "environments", "create", "--name", "cli-env", "--metadata", "team=core", "--json"
    )
    assert made.returncode == 0, made.stderr
    env = json.loads(made.stdout)
    assert (env["name"], env["metadata"], env["config"]) == (
        "cli-env",
        {"team": "core"},
        {"type": "self_hosted"},
    )
    listed = cli(server, "environments", "list", "--json")
    assert env["id"] in [e["id"] for e in json.loads(listed.stdout)]
    table = cli(server, "environments", "list")
    assert env["id"] in table.stdout

    queued = cli(
        server, "sessions", "create", "--prompt", "p", "--environment", env["id"], "--json"
    )
    assert queued.returncode == 0, queued.stderr
    session = json.loads(queued.stdout)
    assert session["environmentId"] == env["id"]
    poll = httpx.get(
        f"{server.url}/v1/environments/{env['id']}/work/poll",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert poll.json()["data"] == {"type": "session", "id": session["sessionId"]}


def test_cli_reports_environment_errors_plainly(server: Server) -> None:
    missing = "env_" + "0" * 32
    result = cli(server, "sessions", "create", "--prompt", "p", "--environment", missing)
    assert result.returncode == 1
    assert f"error 404: Environment {missing} not found" in " ".join(result.stdout.split())
    bad = cli(server, "environments", "create", "--name", "x", "--metadata", "novalue")
    assert bad.returncode != 0
