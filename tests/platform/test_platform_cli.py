"""`shopfloor credentials set/list` and `shopfloor router posteriors` against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, Backend
from tests.processes.server import server_env, start_server, stop_cleanly
from tests.processes.test_cli import cli, operator_env

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.mark.slow
def test_credentials_and_posteriors_from_the_cli(backend: Backend, tmp_path: Path) -> None:
    server = start_server(server_env(backend, tmp_path / "data"), tmp_path / "server.log")
    try:
        env = {**operator_env(server.url, tmp_path / "cli"), "SHOPFLOOR_ADMIN_API_KEY": ADMIN_KEY}
        with httpx.Client(base_url=server.url, headers=ADMIN, timeout=10) as api:
            api.post("/api/v1/orgs", json={"slug": "acme"})
            stored = cli(
                "credentials", "set", "GITHUB_TOKEN", "--org", "acme", "--project", "web",
                "--value", "ghp_secret", env=env,
            )  # fmt: skip
            assert stored.returncode == 0, stored.stderr + stored.stdout
            assert "GITHUB_TOKEN" in stored.stdout and "ghp_secret" not in stored.stdout
            listed = cli("credentials", "list", "--org", "acme", env=env)
            assert "GITHUB_TOKEN" in listed.stdout and "ghp_secret" not in listed.stdout
            refused = cli("credentials", "set", "1BAD", "--value", "x", env=env)
            assert refused.returncode == 1 and "name: must be" in refused.stdout
            snapshot = api.post(
                "/api/daemon/credentials/snapshot", json={"orgId": "acme", "projectId": "web"}
            )
            assert snapshot.json()["env"] == {"GITHUB_TOKEN": "ghp_secret"}
            sid = api.post("/api/v1/sessions", json={"prompt": "p"}).json()["sessionId"]
            worker = {"Authorization": "Bearer test-worker-key"}
            api.post(
                f"/api/sessions/{sid}/routing-feedback",
                json={"provider": "claude", "workType": "qa", "reward": 1},
                headers=worker,
            )
        shown = cli("router", "posteriors", "--json", env=env)
        assert shown.returncode == 0, shown.stderr
        [arm] = json.loads(shown.stdout)
        assert (arm["provider"], arm["workType"], arm["alpha"]) == ("claude", "qa", 2.0)
    finally:
        stop_cleanly(server)
