"""`shopfloor repos`, `git-sources` and `batch` against a real server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ADMIN_KEY, Backend
from tests.processes.server import server_env, start_server, stop_cleanly

pytestmark = pytest.mark.slow
TOKEN = "ghp_FromAFileNotArgv0123456789"


def test_repositories_sources_and_batch_items_from_the_cli(tmp_path: Path) -> None:
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    server = start_server(server_env(backend, tmp_path / "data"), tmp_path / "server.log")

    def cli(*args: str) -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "shopfloor",
                *args,
                "--url",
                server.url,
                "--admin-key",
                ADMIN_KEY,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "COLUMNS": "250"},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    try:
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        source_id = cli(
            "git-sources", "add-token", "--name", "pat", "--token-file", str(token_file)
        ).split()[0]
        assert source_id.startswith("gcs_")
        listed = cli("git-sources", "list")
        assert source_id in listed and TOKEN not in listed
        repo_id = cli(
            "repos", "add", "https://github.com/acme/api.git", "--source", source_id
        ).split()[0]
        assert repo_id in cli("repos", "list")
        payload = json.dumps(
            {"repository": "https://github.com/acme/api.git", "sessionIds": ["s1"]}
        )
        item_id = cli("batch", "add", "--kind", "code-survival-scan", "--payload", payload).split()[
            0
        ]
        assert item_id in cli("batch", "list", "--status", "queued")
        shown = json.loads(cli("batch", "show", item_id))
        assert shown["payload"]["sessionIds"] == ["s1"] and shown["status"] == "queued"
        cli("repos", "remove", repo_id)
        cli("git-sources", "remove", source_id)
        assert repo_id not in cli("repos", "list") and source_id not in cli("git-sources", "list")
    finally:
        stop_cleanly(server)
