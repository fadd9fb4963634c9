"""Secrets at rest (issue 16, item 5): the runtime-JWT signing key lives in a 0600 file outside
the database, the SQLite file is 0600 in a 0700 folder, and the key can be rotated without a
restart while tokens signed with the old key stay valid."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from shopfloor.clock import ManualClock
from shopfloor.service.signing_keys import read_keys, rotate
from tests.agentfactory.helpers import ADMIN
from tests.conftest import Backend, make_settings, running_app
from tests.processes.server import server_env, start_server, stop_cleanly


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def register(http: httpx.Client, token: str) -> tuple[str, str]:
    reply = http.post(
        "/api/workers/register",
        json={"hostname": "h", "capacity": 1},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.status_code == 201, reply.text
    return reply.json()["workerId"], reply.json()["runtimeToken"]


def poll_status(http: httpx.Client, worker_id: str, runtime_token: str) -> int:
    reply = http.get(
        f"/api/workers/{worker_id}/poll", headers={"Authorization": f"Bearer {runtime_token}"}
    )
    return reply.status_code


def test_keys_and_database_are_private_and_rotation_needs_no_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    backend = Backend("sqlite", f"sqlite:///{data / 'shopfloor.db'}", None)
    server = start_server(server_env(backend, data), tmp_path / "server.log")
    try:
        keys_file = data / "signing-keys.json"
        assert mode(data) == 0o700
        assert mode(data / "shopfloor.db") == 0o600
        assert mode(keys_file) == 0o600
        (first,) = read_keys(keys_file)
        with sqlite3.connect(data / "shopfloor.db") as db:
            stored = [row[1] for row in db.execute("SELECT key, value FROM settings")]
        assert all(first.secret not in value for value in stored)

        with httpx.Client(base_url=server.url, timeout=10) as http:
            token = http.post("/api/v1/registration-tokens", json={}, headers=ADMIN).json()
            old_worker, old_jwt = register(http, token["token"])
            assert jwt.get_unverified_header(old_jwt)["kid"] == first.kid

            rotated = subprocess.run(
                [sys.executable, "-m", "shopfloor", "signing-key", "rotate", "--data-dir", data],
                capture_output=True,
                text=True,
                check=True,
            )
            assert "new signing key" in rotated.stdout
            assert mode(keys_file) == 0o600
            new_kid = read_keys(keys_file)[0].kid
            deadline = time.monotonic() + 15  # the server picks it up on its next look
            while True:
                new_worker, new_jwt = register(http, token["token"])
                if jwt.get_unverified_header(new_jwt)["kid"] == new_kid:
                    break
                assert time.monotonic() < deadline, "the rotation was not picked up"
                time.sleep(0.5)
            assert poll_status(http, new_worker, new_jwt) == 200
            assert poll_status(http, old_worker, old_jwt) == 200  # the old key still verifies
    finally:
        stop_cleanly(server)


def test_rotation_retires_keys_once_their_tokens_have_expired(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{"kid": "k_a", "secret": "s" * 64, "created_at": 0}]}))
    first, retired = rotate(path, now_ms=1_000, retire_after_ms=3_600_000)
    assert retired == [] and [k.kid for k in read_keys(path)] == [first.kid, "k_a"]
    # k_a was superseded at 1 s: at 1 s + 1 h + 1 ms no token it signed is alive.
    second, retired = rotate(path, now_ms=3_601_002, retire_after_ms=3_600_000)
    assert retired == ["k_a"]
    assert [k.kid for k in read_keys(path)] == [second.kid, first.kid]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_secret_kept_in_the_database_moves_to_the_key_file(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    """An older shopfloor kept its JWT secret in the settings table: the first start seeds
    the key file with it (its tokens stay valid) and removes it from the database."""
    legacy = "an-old-secret-that-was-in-the-database-000000"
    settings = make_settings(backend, tmp_path)
    async with running_app(settings, clock):
        pass
    (settings.data_dir / "signing-keys.json").unlink()
    with sqlite3.connect(backend.url.removeprefix("sqlite:///")) as db:
        db.execute("INSERT INTO settings VALUES ('runtime_jwt_secret', ?)", (legacy,))
    old_token = jwt.encode(
        {"iss": "shopfloor", "sub": "wkr_x", "exp": 2**40, "jti": "j"}, legacy, algorithm="HS256"
    )
    async with running_app(settings, clock) as api:
        keys = read_keys(settings.data_dir / "signing-keys.json")
        assert [(k.kid, k.secret) for k in keys] == [("legacy", legacy)]
        reply = await api.get(
            "/api/workers/wkr_x/poll", headers={"Authorization": f"Bearer {old_token}"}
        )
        assert reply.status_code == 404  # verified: only the worker is unknown
        assert reply.json()["message"] == "Worker not found"
    with sqlite3.connect(backend.url.removeprefix("sqlite:///")) as db:
        left = "SELECT count(*) FROM settings WHERE key = 'runtime_jwt_secret'"
        assert db.execute(left).fetchone() == (0,)
