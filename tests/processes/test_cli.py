"""The `shopfloor` command against a real server: zero-config start, sessions, workers, tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import WORKER_KEY, Backend
from tests.processes.server import server_env, start_server, stop_cleanly


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopfloor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def operator_env(url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPFLOOR_")}
    env.update({"SHOPFLOOR_URL": url, "SHOPFLOOR_DATA_DIR": str(data_dir), "COLUMNS": "200"})
    return env


def test_zero_config_start_generates_the_admin_key_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    backend = Backend("sqlite", f"sqlite:///{data / 'shopfloor.db'}", None)
    env = server_env(backend, data)
    del env["SHOPFLOOR_ADMIN_API_KEY"], env["SHOPFLOOR_DATABASE_URL"]  # all defaults
    first = start_server(env, tmp_path / "first.log")
    stop_cleanly(first)
    key_file = data / "admin-key"
    key = key_file.read_text().strip()
    assert key.startswith("sfa_") and f"(shown once): {key}" in first.log()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert (data / "shopfloor.db").is_file()

    second = start_server(env, tmp_path / "second.log")
    try:
        assert "shown once" not in second.log()
        r = httpx.get(second.url + "/api/v1/sessions", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200  # the key survived the restart (stored as a digest)
        created = cli(
            "sessions", "create", "--prompt", "hello", "--json", env=operator_env(second.url, data)
        )  # finds the key file itself
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["prompt"] == "hello"
    finally:
        stop_cleanly(second)


def test_sessions_workers_and_tokens_commands(backend: Backend, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(server_env(backend, data), tmp_path / "server.log")
    try:
        env = operator_env(server.url, data)
        env["SHOPFLOOR_ADMIN_API_KEY"] = "test-admin-key"
        made = cli(
            "sessions",
            "create",
            "--issue-identifier",
            "ENG-7",
            "--title",
            "Fix it",
            "--work-type",
            "qa",
            "--project",
            "web",
            "--json",
            env=env,
        )
        assert made.returncode == 0, made.stderr
        session = json.loads(made.stdout)
        assert (session["priority"], session["projectName"]) == (2, "web")

        dispatched = cli(
            "sessions",
            "create",
            "--prompt",
            "p",
            "--branch",
            "b1",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--source-session-id",
            session["sessionId"],
            "--work-item-json",
            '{"kits": {"k": 1}, "resolvedProfile": {"model": "m"}}',
            "--json",
            env=env,
        )
        assert dispatched.returncode == 0, dispatched.stderr
        item = json.loads(dispatched.stdout)["workItem"]
        assert (item["branch"], item["env"], item["kits"]) == (
            "b1",
            {"A": "1", "B": "x=y"},
            {"k": 1},
        )
        assert item["sourceSessionId"] == session["sessionId"]
        assert item["resolvedProfile"] == {"model": "m"}
        bad = cli("sessions", "create", "--prompt", "p", "--env", "novalue", env=env)
        assert bad.returncode == 2 and "NAME=VALUE" in bad.stderr
        httpx.post(
            server.url + f"/api/v1/sessions/{json.loads(dispatched.stdout)['sessionId']}/stop",
            headers={"Authorization": "Bearer test-admin-key"},
        )

        listed = cli("sessions", "list", "--json", "--status", "pending", env=env)
        assert [s["sessionId"] for s in json.loads(listed.stdout)["sessions"]] == [
            session["sessionId"]
        ]
        table = cli("sessions", "list", env=env)
        assert session["sessionId"] in table.stdout and "ENG-7" in table.stdout

        httpx.post(
            server.url + "/api/workers/register",
            headers={"Authorization": f"Bearer {WORKER_KEY}"},
            json={"hostname": "box-1", "capacity": 2},
        )
        workers = json.loads(cli("workers", "list", "--json", env=env).stdout)
        assert [w["hostname"] for w in workers] == ["box-1"]

        shown = cli("sessions", "show", session["sessionId"], env=env)
        assert shown.returncode == 0 and "history" in shown.stdout and "created" in shown.stdout

        token = cli("tokens", "create", "--project", "web", env=env)
        assert token.returncode == 0 and "rsp_live_" in token.stdout

        missing = cli("sessions", "show", "sess_nope", env=env)
        assert missing.returncode == 1 and "Session not found" in missing.stdout
        bad = cli("sessions", "create", env=env)
        assert bad.returncode == 1 and "one of prompt, issueId or issueIdentifier" in bad.stdout
    finally:
        stop_cleanly(server)


def test_cli_reports_an_unreachable_server_plainly(tmp_path: Path) -> None:
    env = operator_env("http://127.0.0.1:9", tmp_path)
    env["SHOPFLOOR_ADMIN_API_KEY"] = "k"
    result = cli("sessions", "list", env=env)
    assert result.returncode == 1 and "cannot reach" in result.stdout
    assert "Traceback" not in result.stderr


def test_serve_refuses_several_processes_on_sqlite(tmp_path: Path) -> None:
    env = operator_env("", tmp_path)
    result = cli("serve", "--processes", "2", env=env)
    assert result.returncode == 2
    assert "--processes > 1 needs PostgreSQL" in result.stdout


@pytest.mark.parametrize("url", ["mysql://x/y"])
def test_serve_names_an_unsupported_database_url(tmp_path: Path, url: str) -> None:
    env = operator_env("", tmp_path)
    env["SHOPFLOOR_DATABASE_URL"] = url
    result = cli("serve", "--port", "1", env=env)
    assert result.returncode == 2
    assert "unsupported database URL scheme 'mysql'" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
