"""A real `shopfloor serve` process with one of everything in it, for the API fuzz test:
an AgentFactory worker holding a session, an environment with a work item, a Veryfront worker
with a run, and the credentials each protocol's workers use."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, BACKENDS, PG_URL, Backend, _drop_schema, _require_postgres
from tests.processes.server import ServerProcess, server_env, start_server

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass(frozen=True)
class Seeded:
    """What the fuzzer's path parameters are pointed at, and the worker credentials."""

    ids: dict[str, list[str]]  # path parameter name -> ids that exist
    runtime_token: str  # AgentFactory: the JWT of a worker registered with an rsk_live_ token
    registration: str  # rsp_live_… scoped to the environment
    veryfront_token: str  # vfw_… of the Veryfront worker


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """Both databases, as the `backend` fixture, for a whole module: NUL characters and
    out-of-range numbers fail differently in each."""
    if request.param == "sqlite":
        tmp = tmp_path_factory.mktemp("fuzzdb")
        yield Backend("sqlite", f"sqlite:///{tmp / 'shopfloor.db'}", None)
        return
    _require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield Backend("postgres", PG_URL, schema)
    _drop_schema(schema)


@pytest.fixture(scope="module")
def fuzz_server(
    fuzz_backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    backend = fuzz_backend
    # Polls answer at once: a held poll would make each fuzzed poll take a second.
    env = server_env(backend, tmp / "data", SHOPFLOOR_POLL_HOLD_MS="0")
    server = start_server(env, tmp / "server.log")
    yield server
    # Not stop_cleanly: the requests the fuzz test skips as known 5xx (the lead's fixes) leave
    # their tracebacks in the log; the test itself fails on every other 5xx.
    code = server.stop(signal.SIGTERM)
    assert code in (0, -signal.SIGTERM), server.log()
    assert "shopfloor: stopped cleanly" in server.log(), server.log()


@pytest.fixture(scope="module")
def seeded(fuzz_server: ServerProcess) -> Seeded:
    with httpx.Client(base_url=fuzz_server.url, headers=ADMIN, timeout=30) as api:

        def post(path: str, body: object, status: int, **kw: object) -> dict[str, object]:
            reply = api.post(path, json=body, **kw)  # type: ignore[arg-type]
            assert reply.status_code == status, reply.text
            found: dict[str, object] = reply.json()
            return found

        env = post("/api/v1/cloud/environments", {"name": "fuzz"}, 200)
        env_id = str(env["id"])
        queued = post("/api/v1/sessions", {"prompt": "work", "environmentId": env_id}, 201)
        work_id = "work_" + str(queued["sessionId"]).removeprefix("sess_")
        token = post("/api/v1/registration-tokens", {"project": env_id}, 201)
        registration = str(token["token"])
        org_token = post("/api/v1/registration-tokens", {}, 201)
        worker = post(
            "/api/workers/register",
            {"hostname": "fuzz", "capacity": 4},
            201,
            headers={"Authorization": f"Bearer {org_token['token']}"},
        )
        jwt_worker, runtime_token = str(worker["workerId"]), str(worker["runtimeToken"])
        session = post("/api/v1/sessions", {"issueIdentifier": "FUZZ-1", "prompt": "go"}, 201)
        polled = api.get(
            f"/api/workers/{jwt_worker}/poll", headers={"Authorization": f"Bearer {runtime_token}"}
        )
        assert polled.json()["claimedSessionIds"] == [session["sessionId"]], polled.text
        vf = post(
            "/agent-workers/projects/fuzz/workers",
            {"implementation_kind": "fuzz", "worker_key": "host-1"},
            201,
        )
        vf_worker = vf["worker"]
        assert isinstance(vf_worker, dict)
        run = post(
            "/runs",
            {
                "project_id": "fuzz",
                "config": {
                    "agent_admission": {
                        "mode": "worker",
                        "implementation_kind": "fuzz",
                        "worker_key": "host-1",
                    }
                },
                "input": "hello",
            },
            202,
        )
        run_view = run["run"]
        assert isinstance(run_view, dict)
        source = post(
            "/api/v1/git-credential-sources", {"kind": "static", "name": "f", "token": "t"}, 201
        )
        repo = post(
            "/api/v1/repositories",
            {"url": "https://github.com/fuzz/repo", "sourceId": source["id"]},
            201,
        )
        item = post(
            "/api/v1/batch-items",
            {
                "kind": "code-survival-scan",
                "capability": "code-survival-scan",
                "payload": {"repository": "https://github.com/fuzz/repo", "sessionIds": []},
            },
            201,
        )
        ids = {
            "worker_id": [jwt_worker, str(vf_worker["id"])],
            "session_id": [str(session["sessionId"])],
            "environment_id": [env_id],
            "work_id": [work_id],
            "token_id": [str(token["id"]), str(org_token["id"])],
            "project_reference": ["fuzz"],
            "run_id": [str(run["run_id"])],
            "conversation_id": [str(run_view["conversation_id"])],
            "repository_id": [str(repo["id"])],
            "source_id": [str(source["id"])],
            "item_id": [str(item["id"])],
        }
        return Seeded(ids, runtime_token, registration, str(vf["token"]))
