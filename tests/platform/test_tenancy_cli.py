"""`shopfloor orgs`, `shopfloor keys` and `shopfloor m2m` against a real server: what they
make works at once, secrets are printed only when made, and revocation takes effect."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from shopfloor.cli.main import app
from shopfloor.cli.options import console
from tests.conftest import ADMIN_KEY, Backend
from tests.processes.server import server_env, start_server, stop_cleanly


def _secret(result: Result, prefix: str) -> str:
    [secret] = [line for line in result.stdout.splitlines() if line.startswith(prefix)]
    return secret


@pytest.mark.slow
def test_orgs_keys_and_m2m_clients_from_the_cli(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 300)  # whole table cells
    server = start_server(server_env(backend, tmp_path / "data"), tmp_path / "server.log")
    runner = CliRunner()
    env = {"SHOPFLOOR_URL": server.url, "SHOPFLOOR_ADMIN_API_KEY": ADMIN_KEY}

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    try:
        made = run("orgs", "create", "acme", "--name", "Acme Ltd")
        assert made.exit_code == 0, made.output
        org_id = made.stdout.split()[0]
        assert org_id.startswith("org_") and "Acme Ltd" in made.stdout
        listed = run("orgs", "list")
        assert org_id in listed.stdout and "default" in listed.stdout
        assert run("orgs", "create", "acme").exit_code == 1  # taken

        # A key: printed once, works at once, listed without its secret, revoked at once.
        minted = run(
            "keys", "mint", "--org", "acme", "--name", "ci",
            "--project", "web", "--scope", "sessions:read",
        )  # fmt: skip
        assert minted.exit_code == 0, minted.output
        secret = _secret(minted, "rsk_live_")
        key_id = minted.stdout.split()[0]
        with httpx.Client(base_url=server.url, timeout=10) as http:
            as_key = {"Authorization": f"Bearer {secret}"}
            assert http.get("/api/public/sessions", headers=as_key).status_code == 200
            keys = run("keys", "list", "--org", "acme")
            assert key_id in keys.stdout and secret[:13] in keys.stdout
            assert secret not in keys.stdout and "web" in keys.stdout
            assert key_id not in run("keys", "list", "--org", "default").stdout
            refused = run("keys", "revoke", key_id, "--org", "default")
            assert refused.exit_code == 1 and "404" in refused.stdout
            assert run("keys", "revoke", key_id, "--org", "acme").exit_code == 0
            assert http.get("/api/public/sessions", headers=as_key).status_code == 401
            bad = run("keys", "mint", "--org", "nowhere", "--name", "x")
            assert bad.exit_code == 1 and "error 404" in bad.stdout

            # An M2M client: its secret gets tokens until it is revoked.
            client = run("m2m", "create", "--org", "acme", "--name", "bot", "--scope", "*")
            assert client.exit_code == 0, client.output
            client_secret = _secret(client, "m2ms_")
            client_id = client.stdout.split()[2]
            form = {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            }
            token = http.post("/api/oauth/token", data=form).json()["access_token"]
            as_client = {"Authorization": f"Bearer {token}"}
            assert http.get("/api/public/sessions", headers=as_client).status_code == 200
            clients = run("m2m", "list", "--org", "acme")
            assert client_id in clients.stdout and client_secret not in clients.stdout
            assert client_id not in run("m2m", "list", "--org", "default").stdout
            assert run("m2m", "revoke", client_id).exit_code == 0
            assert http.get("/api/public/sessions", headers=as_client).status_code == 401
            assert http.post("/api/oauth/token", data=form).status_code == 401
    finally:
        stop_cleanly(server)
