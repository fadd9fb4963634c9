"""The attempts of issue 16, replayed against a real `shopfloor serve` process as a stranger
would make them: two projects, each with its own registration token, runtime JWTs and
Veryfront worker tokens, beside the static worker key and the admin key. Each refused attempt
asserts its status and that nothing changed; the boundaries that already held are replayed too,
so that none of them can quietly open again."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, WORKER_KEY, Backend
from tests.processes.server import ServerProcess, server_env, start_server, stop_cleanly

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
STATIC = {"Authorization": f"Bearer {WORKER_KEY}"}
_numbers = itertools.count(1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("trust")
    backend = Backend("sqlite", f"sqlite:///{tmp / 'shopfloor.db'}", None)
    proc = start_server(server_env(backend, tmp / "data"), tmp / "server.log")
    yield proc
    stop_cleanly(proc)


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=20) as client:
        yield client


@dataclass
class Worker:
    id: str
    headers: dict[str, str]


@dataclass
class Tenant:
    """One project with its own registration token and a worker registered with it."""

    project: str
    token_id: str
    token: str
    worker: Worker


def tenant(http: httpx.Client, name: str) -> Tenant:
    project = f"{name}-{uuid.uuid4().hex[:8]}"
    minted = http.post("/api/v1/registration-tokens", json={"project": project}, headers=ADMIN)
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    return Tenant(project, minted.json()["id"], token, jwt_worker(http, token))


def jwt_worker(http: httpx.Client, token: str) -> Worker:
    reply = http.post(
        "/api/workers/register",
        json={"hostname": "h", "capacity": 2, "version": "0.7.7"},
        headers=bearer(token),
    )
    assert reply.status_code == 201, reply.text
    return Worker(reply.json()["workerId"], bearer(reply.json()["runtimeToken"]))


def queue(http: httpx.Client, project: str, **fields: Any) -> str:
    body = {"issueIdentifier": f"SEC-{next(_numbers)}", "prompt": "p", "projectName": project}
    reply = http.post("/api/v1/sessions", json={**body, **fields}, headers=ADMIN)
    assert reply.status_code == 201, reply.text
    session_id: str = reply.json()["sessionId"]
    return session_id


def claim_running(http: httpx.Client, worker: Worker, session_id: str) -> None:
    """The worker polls until it holds the session, and reports it running."""
    for _ in range(20):
        polled = http.get(f"/api/workers/{worker.id}/poll", headers=worker.headers).json()
        if session_id in polled["claimedSessionIds"]:
            break
    else:
        raise AssertionError(f"{worker.id} never claimed {session_id}")
    status = http.post(
        f"/api/sessions/{session_id}/status",
        json={"workerId": worker.id, "status": "running", "worktreePath": "/w/secret"},
        headers=worker.headers,
    )
    assert status.status_code == 200, status.text


def view(http: httpx.Client, session_id: str) -> dict[str, Any]:
    """The operator's whole picture of a session: its record, history and timeline."""
    session = http.get(f"/api/v1/sessions/{session_id}", headers=ADMIN).json()
    activity = http.get(f"/api/v1/sessions/{session_id}/activity", headers=ADMIN).json()
    return {"session": session, "activity": activity}


# -- 1. session takeover --


def test_a_stranger_cannot_take_over_another_projects_session(http: httpx.Client) -> None:
    a, b = tenant(http, "a"), tenant(http, "b")
    session = queue(http, a.project)
    claim_running(http, a.worker, session)
    before = view(http, session)
    reply = http.post(
        f"/api/sessions/{session}/transfer-ownership",
        json={"newWorkerId": b.worker.id, "oldWorkerId": a.worker.id},
        headers=b.worker.headers,
    )
    assert reply.status_code == 200
    assert reply.json() == {"transferred": False, "reason": "Session not found"}
    completed = http.post(
        f"/api/sessions/{session}/status",
        json={"workerId": b.worker.id, "status": "completed"},
        headers=b.worker.headers,
    )
    assert completed.status_code == 403
    assert view(http, session) == before


def test_a_same_project_stranger_cannot_take_a_live_holders_session(http: httpx.Client) -> None:
    a = tenant(http, "a")
    minted = http.post("/api/v1/registration-tokens", json={"project": a.project}, headers=ADMIN)
    stranger = jwt_worker(http, minted.json()["token"])  # same project, its own token
    session = queue(http, a.project)
    claim_running(http, a.worker, session)
    before = view(http, session)
    body = {"newWorkerId": stranger.id, "oldWorkerId": a.worker.id}
    reply = http.post(
        f"/api/sessions/{session}/transfer-ownership", json=body, headers=stranger.headers
    )
    assert reply.json() == {
        "transferred": False,
        "reason": f"Session is held by a live worker: {a.worker.id}",
    }
    assert view(http, session) == before
    # Naming someone else as the new holder is refused outright.
    body = {"newWorkerId": a.worker.id, "oldWorkerId": a.worker.id}
    reply = http.post(
        f"/api/sessions/{session}/transfer-ownership", json=body, headers=stranger.headers
    )
    assert reply.status_code == 403
    # Once the holder is gone, a worker of the project may take its session over.
    assert http.delete(f"/api/workers/{a.worker.id}", headers=a.worker.headers).status_code == 200
    session = queue(http, a.project)
    holder = jwt_worker(http, a.token)
    claim_running(http, holder, session)
    http.post(f"/api/sessions/{session}/files/release-all", headers=holder.headers)
    holder_gone = http.delete(f"/api/workers/{holder.id}", headers=holder.headers)
    assert holder_gone.status_code == 200


def test_a_re_registered_worker_keeps_its_sessions(http: httpx.Client) -> None:
    """The legitimate transfer: the same registration token's new worker id takes over the
    sessions of its old id, which the server still counts alive."""
    a = tenant(http, "a")
    session = queue(http, a.project)
    claim_running(http, a.worker, session)
    again = jwt_worker(http, a.token)
    reply = http.post(
        f"/api/sessions/{session}/transfer-ownership",
        json={"newWorkerId": again.id, "oldWorkerId": a.worker.id},
        headers=again.headers,
    )
    assert reply.json()["transferred"] is True
    assert reply.json()["session"]["workerId"] == again.id
    old_write = http.post(
        f"/api/sessions/{session}/activity",
        json={"workerId": a.worker.id, "activity": {"type": "thought", "content": "stale"}},
        headers=a.worker.headers,
    )
    assert old_write.status_code == 403


# -- 2. revocation --


def test_revoking_a_registration_token_revokes_what_was_minted_from_it(
    http: httpx.Client,
) -> None:
    a = tenant(http, "a")
    session = queue(http, a.project)
    claim_running(http, a.worker, session)
    vf_project = f"vf-{uuid.uuid4().hex[:8]}"
    vf_token_reply = http.post(
        "/api/v1/registration-tokens", json={"project": vf_project}, headers=ADMIN
    ).json()
    vf = http.post(
        f"/agent-workers/projects/{vf_project}/workers",
        json={"implementation_kind": "k", "worker_key": "w1"},
        headers=bearer(vf_token_reply["token"]),
    )
    assert vf.status_code == 201, vf.text
    vf_worker, vf_token = vf.json()["worker"]["id"], vf.json()["token"]

    assert http.delete(f"/api/v1/registration-tokens/{a.token_id}", headers=ADMIN).is_success
    assert http.delete(
        f"/api/v1/registration-tokens/{vf_token_reply['id']}", headers=ADMIN
    ).is_success

    poll = http.get(f"/api/workers/{a.worker.id}/poll", headers=a.worker.headers)
    assert poll.status_code == 401
    assert poll.json()["message"] == "Runtime token revoked"
    completed = http.post(
        f"/api/sessions/{session}/status",
        json={"workerId": a.worker.id, "status": "completed"},
        headers=a.worker.headers,
    )
    assert completed.status_code == 401
    heartbeat = http.post(
        f"/agent-workers/workers/{vf_worker}/heartbeat", json={}, headers=bearer(vf_token)
    )
    assert heartbeat.status_code == 401
    # The revoked workers are gone and the session they held is queued again.
    record = view(http, session)["session"]
    assert record["status"] == "pending" and record["workerId"] is None
    assert "registration token was revoked" in record["history"][-1]["reason"]


# -- 4. cross-project reads and writes --


def test_a_runtime_jwt_sees_nothing_of_another_project(http: httpx.Client) -> None:
    a, b = tenant(http, "a"), tenant(http, "b")
    issue = f"SEC-{next(_numbers)}"
    session = queue(http, a.project, issueIdentifier=issue, workType="development")
    claim_running(http, a.worker, session)
    before = view(http, session)
    for path in ("status", "recovery", "recovery/chain"):
        reply = http.get(f"/api/sessions/{session}/{path}", headers=b.worker.headers)
        assert reply.status_code == 404, path
        assert "worktreePath" not in reply.text
    packet = http.post(f"/api/sessions/{session}/recovery", json={}, headers=b.worker.headers)
    assert packet.status_code == 404
    for method, args in [
        ("getIssue", [issue]),
        ("createComment", [issue, "mine now"]),
        ("updateIssueStatus", [issue, "Done"]),
        ("unassignIssue", [issue]),
    ]:
        reply = http.post(
            "/api/issue-tracker-proxy",
            json={"method": method, "args": args},
            headers=b.worker.headers,
        )
        assert reply.status_code == 404, method
        assert reply.json()["error"]["code"] == "PROXY_ERROR"
    child = http.post(
        "/api/issue-tracker-proxy",
        json={"method": "isChildIssue", "args": [issue]},
        headers=b.worker.headers,
    )
    assert child.json() == {"success": True, "data": False}
    assert view(http, session) == before
    # The session's own worker still reads all of it.
    own = http.get(f"/api/sessions/{session}/status", headers=a.worker.headers)
    assert own.status_code == 200 and own.json()["worktreePath"] == "/w/secret"
    got = http.post(
        "/api/issue-tracker-proxy",
        json={"method": "getIssue", "args": [issue]},
        headers=a.worker.headers,
    )
    assert got.json()["data"]["state"]["name"] == "Backlog"


# -- 6. writes that name no worker --


def test_a_stale_static_key_write_is_not_credited_to_the_new_holder(http: httpx.Client) -> None:
    """A session moves from one static-key worker to a JWT worker; the old one's bodies name
    no worker. Its completion is kept unattributed, and its release-all leaves the new
    holder's reservations alone."""
    project = f"s-{uuid.uuid4().hex[:8]}"
    session = queue(http, project)
    reply = http.post(
        "/api/workers/register",
        json={"hostname": "old", "capacity": 1, "projects": [project]},
        headers=STATIC,
    )
    old = Worker(reply.json()["workerId"], STATIC)
    claim_running(http, old, session)
    minted = http.post("/api/v1/registration-tokens", json={"project": project}, headers=ADMIN)
    new = jwt_worker(http, minted.json()["token"])
    assert http.delete(f"/api/workers/{old.id}", headers=STATIC).is_success  # old goes away
    claim_running(http, new, session)
    reserved = http.post(
        f"/api/sessions/{session}/files/reserve",
        json={"filePaths": ["src/a.py"]},
        headers=new.headers,
    )
    assert reserved.json()["reserved"] == ["src/a.py"]

    stale = http.post(
        f"/api/sessions/{session}/completion", json={"summary": "old news"}, headers=STATIC
    )
    assert stale.status_code == 200
    released = http.post(f"/api/sessions/{session}/files/release-all", headers=STATIC)
    assert released.json() == {"released": 0}
    probe = http.post(
        f"/api/sessions/{queue(http, project)}/files/check-conflicts",
        json={"filePaths": ["src/a.py"]},
        headers=STATIC,
    )
    assert [c["filePath"] for c in probe.json()["conflicts"]] == ["src/a.py"]
    timeline = view(http, session)["activity"]["activities"]
    completion = [e for e in timeline if e["type"] == "completion"]
    assert completion[-1]["workerId"] is None  # not the new holder's
    # The new holder's own release, naming no worker, is credited to its JWT and works.
    mine = http.post(f"/api/sessions/{session}/files/release-all", headers=new.headers)
    assert mine.json() == {"released": 1}


def test_writes_after_the_end_are_kept_apart_as_late(http: httpx.Client) -> None:
    a = tenant(http, "a")
    session = queue(http, a.project)
    claim_running(http, a.worker, session)
    ended = http.post(
        f"/api/sessions/{session}/status",
        json={"workerId": a.worker.id, "status": "completed"},
        headers=a.worker.headers,
    )
    assert ended.status_code == 200
    late = http.post(
        f"/api/sessions/{session}/activity",
        json={"workerId": a.worker.id, "activity": {"type": "thought", "content": "after"}},
        headers=a.worker.headers,
    )
    assert late.status_code == 200
    entries = view(http, session)["activity"]["activities"]
    assert [e["type"] for e in entries if e["type"] in ("activity", "late")] == ["late"]
    assert entries[-1]["data"] == {"kind": "activity", "type": "thought", "content": "after"}


# -- boundaries that already held --


def test_the_boundaries_that_held_still_hold(http: httpx.Client) -> None:
    a, b = tenant(http, "a"), tenant(http, "b")
    session = queue(http, a.project)
    claim_running(http, a.worker, session)
    before = view(http, session)
    env = http.post("/v1/environments", json={"name": "e"}, headers=ADMIN).json()["id"]
    refused: list[tuple[str, str, dict[str, str], Any, int]] = [
        ("GET", f"/api/workers/{a.worker.id}/poll", b.worker.headers, None, 403),
        (
            "POST",
            f"/api/workers/{a.worker.id}/heartbeat",
            b.worker.headers,
            {"activeCount": 0},
            403,
        ),
        ("DELETE", f"/api/workers/{a.worker.id}", b.worker.headers, None, 403),
        (
            "POST",
            f"/api/sessions/{session}/status",
            b.worker.headers,
            {"workerId": a.worker.id, "status": "completed"},
            403,
        ),
        (
            "POST",
            f"/api/sessions/{session}/activity",
            b.worker.headers,
            {"workerId": b.worker.id, "activity": {"type": "thought", "content": "x"}},
            403,
        ),
        ("POST", f"/api/sessions/{session}/completion", b.worker.headers, {"summary": "x"}, 403),
        ("POST", f"/api/sessions/{session}/files/release-all", b.worker.headers, None, 403),
        ("POST", f"/api/sessions/{session}/nack", b.worker.headers, {"workerId": b.worker.id}, 403),
        ("GET", "/api/v1/sessions", b.worker.headers, None, 401),
        ("GET", "/api/v1/sessions", bearer(b.token), None, 401),
        ("POST", "/v1/environments", bearer(b.token), {"name": "mine"}, 403),
        ("GET", f"/v1/environments/{env}/work/poll", bearer(b.token), None, 403),
        ("GET", f"/api/workers/{a.worker.id}/poll", bearer(a.token), None, 401),
        ("POST", f"/agent-workers/projects/{a.project}/workers", bearer(b.token), {}, 403),
    ]
    for method, path, headers, body, status in refused:
        reply = http.request(method, path, headers=headers, json=body)
        assert reply.status_code == status, (method, path, reply.text)
    assert view(http, session) == before
