"""Running the real `veryfront` npm client (pinned in interop/veryfront) against a real
`shopfloor serve` process: the node binary, a server per backend, project tokens, and the
node scripts' one-line JSON reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, PG_URL, Backend, _drop_schema, _require_postgres
from tests.veryfront.server import Server, serve

INTEROP = Path(__file__).resolve().parents[2] / "interop" / "veryfront"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def node_binary() -> str:
    """Node, with the pinned package installed; a missing one fails the test (set
    SHOPFLOOR_SKIP_NODE_INTEROP=1 to skip deliberately on a machine without Node)."""
    if os.environ.get("SHOPFLOOR_SKIP_NODE_INTEROP") == "1":
        pytest.skip("SHOPFLOOR_SKIP_NODE_INTEROP=1")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (>= 18) is required for the veryfront interop tests")
    pinned = json.loads((INTEROP / "package.json").read_text())["dependencies"]["veryfront"]
    installed = INTEROP / "node_modules" / "veryfront" / "package.json"
    if not installed.is_file():
        pytest.fail("veryfront is not installed: run `npm ci --prefix interop/veryfront`")
    version = json.loads(installed.read_text())["version"]
    assert version == pinned, f"installed veryfront {version}, pinned {pinned}: run npm ci"
    return node


def serve_backend(
    name: str, tmp_path_factory: pytest.TempPathFactory, **settings: str
) -> Iterator[Server]:
    """A server process on a fresh SQLite file or PostgreSQL schema."""
    tmp_path = tmp_path_factory.mktemp(f"npm-{name}")
    if name == "sqlite":
        backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    else:
        _require_postgres()
        backend = Backend("postgres", PG_URL, f"t_{uuid.uuid4().hex[:12]}")
    try:
        with serve(backend, tmp_path, **settings) as srv:
            yield srv
    finally:
        if backend.schema:
            _drop_schema(backend.schema)


def project_token(server: Server, project: str) -> str:
    """A registration token scoped to the project: the client's project token."""
    reply = httpx.post(
        f"{server.url}/api/v1/registration-tokens", headers=ADMIN, json={"project": project}
    )
    assert reply.status_code == 201, reply.text
    token: str = reply.json()["token"]
    return token


def run_script(
    node: str, script: str, scenario: str, server: Server, env: dict[str, str]
) -> dict[str, Any]:
    """Run a scenario of a node script; its `result`, after checking that every 2xx reply it
    recorded was JSON and every refusal had a `detail`."""
    done = subprocess.run(
        [node, script, scenario],
        cwd=INTEROP,
        env={**os.environ, "VF_URL": server.url, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = done.stdout.strip().splitlines()
    if not lines:
        pytest.fail(f"node printed nothing (exit {done.returncode}):\n{done.stderr}")
    report: dict[str, Any] = json.loads(lines[-1])
    if not report["ok"]:
        pytest.fail(f"{scenario} failed: {report['error']}\nserver log:\n{server.log.read_text()}")
    for reply in report["replies"]:  # the client calls response.json() on every 2xx
        if 200 <= reply["status"] < 300:
            json.loads(reply["text"])
        else:
            assert "detail" in json.loads(reply["text"])
    result: dict[str, Any] = report["result"]
    return result
