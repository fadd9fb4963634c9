"""Revocation reaches every server process at once (issue 16, item 2): two `shopfloor serve`
processes share one PostgreSQL; a token revoked through one is refused by the other on the
very next call, with no reaper pass in between."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_KEY, Backend
from tests.processes.server import server_env, start_server, stop_cleanly

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def test_a_revocation_on_one_process_is_refused_by_the_other(
    postgres: Backend, tmp_path: Path
) -> None:
    # Upkeep passes an hour apart: only the notification can carry the revocation.
    env = server_env(postgres, tmp_path / "data", SHOPFLOOR_REAP_INTERVAL_SECONDS="3600")
    one = start_server(env, tmp_path / "one.log")
    two = start_server(env, tmp_path / "two.log")
    try:
        with (
            httpx.Client(base_url=one.url, timeout=10) as a,
            httpx.Client(base_url=two.url, timeout=10) as b,
        ):
            minted = a.post("/api/v1/registration-tokens", json={}, headers=ADMIN).json()
            reply = a.post(
                "/api/workers/register",
                json={"hostname": "h", "capacity": 1},
                headers={"Authorization": f"Bearer {minted['token']}"},
            ).json()
            worker, runtime = (
                reply["workerId"],
                {"Authorization": f"Bearer {reply['runtimeToken']}"},
            )
            assert b.get(f"/api/workers/{worker}/poll", headers=runtime).status_code == 200
            revoked = a.delete(f"/api/v1/registration-tokens/{minted['id']}", headers=ADMIN)
            assert revoked.status_code == 200
            # The NOTIFY reaches the other process asynchronously: within milliseconds, but
            # not before the DELETE's reply, so allow it a moment.
            deadline = time.monotonic() + 2
            refused = b.get(f"/api/workers/{worker}/poll", headers=runtime)
            while refused.status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.02)
                refused = b.get(f"/api/workers/{worker}/poll", headers=runtime)
            assert refused.status_code == 401
            assert refused.json()["message"] == "Runtime token revoked"
    finally:
        stop_cleanly(one)
        stop_cleanly(two)
