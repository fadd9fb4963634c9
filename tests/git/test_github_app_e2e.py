"""GitHub App credentials and batch work against real `shopfloor serve` processes, with a
stand-in GitHub API that checks the App's JWT: a runtime-JWT worker's poll carries an
installation token narrowed to its session's repository, cached while it is fresh and minted
again when it is about to expire; a failing GitHub never fails the poll; no secret reaches a
list endpoint, the server's log or the database in clear. Batch items are handed out exactly
once to racing workers (on two server processes sharing PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopfloor.store import open_store
from tests.conftest import ADMIN_KEY, Backend
from tests.git.github_standin import GitHubStandIn, rsa_key_pem
from tests.processes.server import ServerProcess, server_env, start_server, stop_cleanly

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
APP_ID, INSTALLATION = "424242", "31337"
SCAN = "code-survival-scan"


@pytest.fixture
def github() -> Iterator[tuple[GitHubStandIn, str]]:
    private, public = rsa_key_pem()
    standin = GitHubStandIn(APP_ID, INSTALLATION, public).start()
    yield standin, private
    standin.stop()


def call(api: httpx.Client, method: str, path: str, status: int, **kw: Any) -> Any:
    reply = api.request(method, path, **kw)
    assert reply.status_code == status, reply.text
    return reply.json()


def jwt_worker(api: httpx.Client, capabilities: list[str] | None = None) -> tuple[str, Any]:
    token = call(api, "POST", "/api/v1/registration-tokens", 201, json={}, headers=ADMIN)
    body = {"hostname": "h", "capacity": 50, "capabilities": capabilities or []}
    auth = {"Authorization": f"Bearer {token['token']}"}
    reply = call(api, "POST", "/api/workers/register", 201, json=body, headers=auth)
    return reply["workerId"], {"Authorization": f"Bearer {reply['runtimeToken']}"}


def queue_and_poll(api: httpx.Client, worker: str, headers: Any, repository: str) -> Any:
    body = {"prompt": "p", "repository": repository}
    call(api, "POST", "/api/v1/sessions", 201, json=body, headers=ADMIN)
    polled = call(api, "GET", f"/api/workers/{worker}/poll", 200, headers=headers)
    assert len(polled["work"]) == 1, polled
    return polled["gitCredentials"]


def test_installation_tokens_for_the_claimed_repository_only(
    backend: Backend, tmp_path: Path, github: tuple[GitHubStandIn, str]
) -> None:
    standin, private_key = github
    env = server_env(
        backend, tmp_path / "data", SHOPFLOOR_GITHUB_API_URL=standin.url, SHOPFLOOR_POLL_HOLD_MS="0"
    )
    server = start_server(env, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            app_source = {
                "kind": "github_app",
                "name": "acme-app",
                "appId": APP_ID,
                "installationId": INSTALLATION,
                "privateKey": private_key,
                "orgDefault": True,
            }
            created = call(
                api, "POST", "/api/v1/git-credential-sources", 201, json=app_source, headers=ADMIN
            )
            for name in ("api", "web", "docs"):
                url = f"https://github.com/acme/{name}.git"
                call(api, "POST", "/api/v1/repositories", 201, json={"url": url}, headers=ADMIN)
            worker, jwt = jwt_worker(api)

            (first,) = queue_and_poll(api, worker, jwt, "https://github.com/acme/api")
            assert first["cloneUrl"] == "https://github.com/acme/api.git"
            assert first["token"] == "ghs_standin0001" and first["expiresAt"]
            assert standin.minted[0]["repositories"] == ["api"]  # narrowed to the one repository
            # Fresh for an hour: the next session of that repository reuses it.
            (again,) = queue_and_poll(api, worker, jwt, "acme/api")
            assert again["token"] == "ghs_standin0001" and len(standin.minted) == 1
            (web,) = queue_and_poll(api, worker, jwt, "github.com/acme/web")
            assert web["token"] == "ghs_standin0002" and standin.minted[1]["repositories"] == [
                "web"
            ]

            # A token about to expire (within five minutes) is minted anew at every poll.
            standin.token_lifetime_s = 120
            before = len(standin.minted)
            (docs,) = queue_and_poll(api, worker, jwt, "github.com/acme/docs")
            (docs_again,) = queue_and_poll(api, worker, jwt, "github.com/acme/docs")
            assert len(standin.minted) == before + 2 and docs["token"] != docs_again["token"]

            # GitHub down: the poll still answers, without the credential; the source says why.
            standin.failing = True
            assert queue_and_poll(api, worker, jwt, "github.com/acme/docs") == []
            (listed,) = call(api, "GET", "/api/v1/git-credential-sources", 200, headers=ADMIN)
            assert listed["lastError"] == f"GitHub API answered 500 for installation {INSTALLATION}"
            standin.failing = False
            (back,) = queue_and_poll(api, worker, jwt, "github.com/acme/docs")
            assert back["token"] == standin.minted[-1]["token"]
            (listed,) = call(api, "GET", "/api/v1/git-credential-sources", 200, headers=ADMIN)
            assert listed["lastError"] is None
            assert not standin.refused  # every JWT shopfloor signed was good

            everything = " ".join(
                api.get(path, headers=ADMIN).text
                for path in (
                    "/api/v1/git-credential-sources",
                    "/api/v1/repositories",
                    "/api/v1/sessions",
                    f"/api/v1/git-credential-sources/{created['id']}",
                )
            )
            tokens = [m["token"] for m in standin.minted]
            for secret in [*tokens, _pem_body(private_key)]:
                assert secret not in everything
    finally:
        stop_cleanly(server)
    log = server.log()
    for secret in [*(m["token"] for m in standin.minted), _pem_body(private_key)]:
        assert secret not in log
    assert _pem_body(private_key) not in _database_text(backend)


def _pem_body(pem: str) -> str:
    return pem.splitlines()[5]  # a line of the key itself, not the armour


def _database_text(backend: Backend) -> str:
    """What the database holds of the sources, and for SQLite the file's bytes too."""

    async def read() -> str:
        store = await open_store(backend.url, schema=backend.schema)
        try:
            sources = await store.list_git_sources("org_default")
        finally:
            await store.close()
        return repr(sources)

    text = asyncio.run(read())
    if backend.name == "sqlite":
        path = Path(backend.url.removeprefix("sqlite:///"))
        for part in (path, path.with_name(path.name + "-wal")):
            if part.exists():
                text += part.read_bytes().decode("latin-1")
    return text


def test_batch_items_are_handed_out_once_to_racing_workers(
    backend: Backend, tmp_path: Path
) -> None:
    """Workers race on two server processes sharing PostgreSQL (SQLite serves one process:
    there they race on its one server); then a server with one-second leases shows an
    unreported item leased again and its late holder refused."""
    env = server_env(backend, tmp_path / "data", SHOPFLOOR_POLL_HOLD_MS="0")
    count = 2 if backend.name == "postgres" else 1
    servers = [start_server(env, tmp_path / f"server{n}.log") for n in range(count)]
    try:
        _race(servers, count=40, workers=6)
    finally:
        for server in servers:
            stop_cleanly(server)
    short = start_server({**env, "SHOPFLOOR_BATCH_LEASE_SECONDS": "1"}, tmp_path / "short.log")
    try:
        _redelivery(short)
    finally:
        stop_cleanly(short)


def _race(servers: list[ServerProcess], count: int, workers: int) -> None:
    with httpx.Client(base_url=servers[0].url, timeout=30) as api:
        for n in range(count):
            body = {
                "kind": SCAN,
                "capability": SCAN,
                "payload": {"repository": "a/b", "sessionIds": [str(n)]},
            }
            call(api, "POST", "/api/v1/batch-items", 201, json=body, headers=ADMIN)
        registered = [jwt_worker(api, [SCAN]) for _ in range(workers)]

    async def drain(n: int, worker: str, headers: Any) -> list[str]:
        got: list[str] = []
        async with httpx.AsyncClient(base_url=servers[n % len(servers)].url, timeout=30) as client:
            while True:  # until a poll finds nothing due (the rest is leased or done)
                reply = await client.get(f"/api/workers/{worker}/poll", headers=headers)
                assert reply.status_code == 200, reply.text
                items = reply.json().get("batchWork", [])
                if not items:
                    return got
                for item in items:
                    result = {
                        "leaseEpoch": item["leaseEpoch"],
                        "status": "completed",
                        "result": {"by": worker},
                    }
                    done = await client.post(
                        f"/api/workers/{worker}/batch-work/{item['id']}/result",
                        json=result,
                        headers=headers,
                    )
                    assert done.status_code == 200, done.text
                got.extend(i["id"] for i in items)

    async def race() -> list[list[str]]:
        return await asyncio.gather(*(drain(n, w, h) for n, (w, h) in enumerate(registered)))

    handed = [i for got in asyncio.run(race()) for i in got]
    assert len(handed) == count and len(set(handed)) == count  # each item once, none lost
    with httpx.Client(base_url=servers[-1].url, timeout=30) as api:
        listed = call(api, "GET", "/api/v1/batch-items", 200, params={"limit": 500}, headers=ADMIN)
    assert {i["status"] for i in listed} == {"completed"} and len(listed) == count
    assert {i["attempts"] for i in listed} == {1}
    assert all(i["result"] == {"by": i["workerId"]} for i in listed)


def _redelivery(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as api:
        body = {
            "kind": SCAN,
            "capability": SCAN,
            "payload": {"repository": "a/b", "sessionIds": []},
        }
        item = call(api, "POST", "/api/v1/batch-items", 201, json=body, headers=ADMIN)
        (a, a_jwt), (b, b_jwt) = jwt_worker(api, [SCAN]), jwt_worker(api, [SCAN])
        (first,) = call(api, "GET", f"/api/workers/{a}/poll", 200, headers=a_jwt)["batchWork"]
        assert first["id"] == item["id"]
        time.sleep(1.2)  # the one-second lease runs out
        (second,) = call(api, "GET", f"/api/workers/{b}/poll", 200, headers=b_jwt)["batchWork"]
        assert (second["id"], second["leaseEpoch"], second["attempts"]) == (item["id"], 2, 2)
        result = {"leaseEpoch": 1, "status": "completed"}
        late = api.post(
            f"/api/workers/{a}/batch-work/{item['id']}/result", json=result, headers=a_jwt
        )
        assert late.status_code == 409
        result = {"leaseEpoch": 2, "status": "failed", "result": {"error": "clone failed"}}
        call(
            api,
            "POST",
            f"/api/workers/{b}/batch-work/{item['id']}/result",
            200,
            json=result,
            headers=b_jwt,
        )
        stored = call(api, "GET", f"/api/v1/batch-items/{item['id']}", 200, headers=ADMIN)
        assert (stored["status"], stored["workerId"]) == ("failed", b)
