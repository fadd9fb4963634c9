"""Issue locks and file reservations over a real server, and their TTLs in-process with a
manual clock."""

from __future__ import annotations

from pathlib import Path

import httpx

from shopfloor.clock import ManualClock
from shopfloor.service.dispatch import Dispatcher
from tests.channel.conftest import Server, Worker, create_session, timeline
from tests.conftest import ADMIN_KEY, WORKER_KEY, Backend, make_settings, running_app


def status_of(admin: httpx.Client, sid: str) -> str:
    status: str = admin.get(f"/api/v1/sessions/{sid}").json()["status"]
    return status


def test_one_live_session_per_issue_latest_parked_work_wins(server: Server) -> None:
    admin = server.admin()
    issue = {"issueId": "iss-1", "issueIdentifier": "ENG-1"}
    holder = create_session(admin, workType="development", **issue)["sessionId"]
    qa_old = create_session(admin, workType="qa", **issue)
    assert qa_old["status"] == "parked"
    qa_new = create_session(admin, workType="qa", **issue)["sessionId"]
    research = create_session(admin, workType="research", **issue)["sessionId"]
    # The newer qa work replaced the older one; research is parked beside it.
    assert status_of(admin, qa_old["sessionId"]) == "stopped"
    history = admin.get(f"/api/v1/sessions/{qa_old['sessionId']}").json()["history"]
    assert history[-1]["reason"] == f"superseded by newer parked work {qa_new}"
    assert status_of(admin, qa_new) == "parked" and status_of(admin, research) == "parked"

    worker = Worker(server.url)
    assert worker.poll()["claimedSessionIds"] == [holder]  # parked work is not claimable
    worker.run(holder)
    assert worker.poll()["work"] == []
    reply = worker.post(
        f"/api/sessions/{holder}/lock-refresh", {"workerId": worker.id, "issueId": "iss-1"}
    )
    assert reply.json() == {"refreshed": True}
    other = Worker(server.url)
    reply = other.post(
        f"/api/sessions/{holder}/lock-refresh", {"workerId": other.id, "issueId": "iss-1"}
    )
    assert reply.status_code == 403
    reply = worker.post(f"/api/sessions/{holder}/lock-refresh", {"workerId": worker.id})
    assert reply.json()["message"] == "workerId and issueId are required"

    worker.finish(holder)
    # The holder ended: the most urgent parked work (qa, priority 2) takes the lock.
    assert status_of(admin, qa_new) == "pending"
    assert status_of(admin, research) == "parked"
    entries = timeline(admin, qa_new)["activities"]
    assert entries[-1]["reason"] == f"promoted: issue lock released by {holder}"
    assert worker.poll()["claimedSessionIds"] == [qa_new]
    worker.run(qa_new)
    worker.finish(qa_new, "failed")
    assert worker.poll()["claimedSessionIds"] == [research]


def test_a_stop_releases_the_issue_lock(server: Server) -> None:
    admin = server.admin()
    first = create_session(admin, issueId="iss-9", workType="development")["sessionId"]
    second = create_session(admin, issueId="iss-9", workType="qa")["sessionId"]
    assert status_of(admin, second) == "parked"
    admin.post(f"/api/v1/sessions/{first}/stop")
    assert status_of(admin, second) == "pending"


async def test_an_unrefreshed_issue_lock_expires(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    settings = make_settings(
        backend, tmp_path, issue_lock_ttl_seconds=600.0, worker_ttl_seconds=100_000.0
    )
    async with running_app(settings, clock) as api:
        dispatcher: Dispatcher = api.app.state.services.dispatcher  # type: ignore[attr-defined]
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        worker_auth = {"Authorization": f"Bearer {WORKER_KEY}"}

        async def create(work_type: str) -> str:
            r = await api.post(
                "/api/v1/sessions",
                json={"issueId": "iss-t", "workType": work_type, "prompt": "p"},
                headers=admin,
            )
            sid: str = r.json()["sessionId"]
            return sid

        holder = await create("development")
        parked = await create("qa")
        reg = await api.post(
            "/api/workers/register", json={"hostname": "h", "capacity": 1}, headers=worker_auth
        )
        wid = reg.json()["workerId"]
        await api.get(f"/api/workers/{wid}/poll", headers=worker_auth)
        await api.post(
            f"/api/sessions/{holder}/status",
            json={"workerId": wid, "status": "running"},
            headers=worker_auth,
        )
        # Refreshed in time: the lock holds past its first TTL.
        clock.advance(500)
        await api.post(
            f"/api/sessions/{holder}/lock-refresh",
            json={"workerId": wid, "issueId": "iss-t"},
            headers=worker_auth,
        )
        await api.post(
            f"/api/workers/{wid}/heartbeat", json={"activeCount": 1}, headers=worker_auth
        )
        clock.advance(500)
        assert (await dispatcher.reap()).promoted == []
        assert (await dispatcher.get_session(parked)).status == "parked"
        # Nobody refreshes any more: the lock lapses and the parked work runs.
        clock.advance(200)
        await api.post(
            f"/api/workers/{wid}/heartbeat", json={"activeCount": 1}, headers=worker_auth
        )
        assert (await dispatcher.reap()).promoted == [parked]
        assert (await dispatcher.get_session(parked)).status == "pending"


def test_file_reservations_conflict_per_repository(server: Server) -> None:
    admin = server.admin()
    repo = "https://github.com/acme/app.git"
    s1 = create_session(admin, repository=repo)["sessionId"]
    s2 = create_session(admin, repository="/home/me/app")["sessionId"]  # same repo name
    s3 = create_session(admin, repository="https://github.com/acme/other")["sessionId"]
    worker = Worker(server.url)
    worker.poll()

    def files(sid: str, action: str, paths: list[str] | None = None) -> dict[str, object]:
        body = {"filePaths": paths} if paths is not None else None
        reply = worker.post(f"/api/sessions/{sid}/files/{action}", body)
        assert reply.status_code == 200, reply.text
        result: dict[str, object] = reply.json()
        return result

    assert files(s1, "reserve", ["src/a.py", "src/b.py"]) == {
        "reserved": ["src/a.py", "src/b.py"],
        "conflicts": [],
    }
    assert files(s1, "reserve", ["src/a.py"])["reserved"] == ["src/a.py"]  # own: renewed
    result = files(s2, "reserve", ["src/b.py", "src/c.py"])
    assert result["reserved"] == ["src/c.py"]
    conflicts = result["conflicts"]
    assert isinstance(conflicts, list) and len(conflicts) == 1
    assert conflicts[0]["filePath"] == "src/b.py"
    assert conflicts[0]["heldBy"]["sessionId"] == s1
    assert isinstance(conflicts[0]["heldBy"]["reservedAt"], int)
    # Another repository is another namespace.
    assert files(s3, "reserve", ["src/b.py"])["conflicts"] == []
    checked = files(s2, "check-conflicts", ["src/a.py", "src/c.py"])["conflicts"]
    assert [c["filePath"] for c in checked] == ["src/a.py"]  # type: ignore[index]
    assert files(s1, "release", ["src/b.py"]) == {"released": 1}
    assert files(s2, "reserve", ["src/b.py"])["reserved"] == ["src/b.py"]
    assert files(s2, "release-all") == {"released": 2}
    assert files(s2, "check-conflicts", ["src/a.py"])["conflicts"] != []
    reply = worker.post(f"/api/sessions/{s1}/files/reserve", {"filePaths": []})
    assert reply.status_code == 400 and "filePaths" in reply.json()["message"]
    # A session's reservations go when it ends.
    worker.run(s1)
    worker.finish(s1)
    assert files(s2, "check-conflicts", ["src/a.py"])["conflicts"] == []


async def test_a_file_reservation_lapses_after_its_ttl(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    settings = make_settings(backend, tmp_path, file_lock_ttl_seconds=60.0)
    async with running_app(settings, clock) as api:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        auth = {"Authorization": f"Bearer {WORKER_KEY}"}
        ids = []
        for _ in range(2):
            r = await api.post(
                "/api/v1/sessions", json={"prompt": "p", "repository": "r"}, headers=admin
            )
            ids.append(r.json()["sessionId"])
        body = {"filePaths": ["x"]}
        r = await api.post(f"/api/sessions/{ids[0]}/files/reserve", json=body, headers=auth)
        assert r.json()["reserved"] == ["x"]
        clock.advance(59)
        r = await api.post(f"/api/sessions/{ids[1]}/files/reserve", json=body, headers=auth)
        assert r.json()["reserved"] == []
        clock.advance(2)
        r = await api.post(f"/api/sessions/{ids[1]}/files/reserve", json=body, headers=auth)
        assert r.json()["reserved"] == ["x"]


async def test_a_requeued_session_keeps_its_issue_lock(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    settings = make_settings(backend, tmp_path, issue_lock_ttl_seconds=600.0)
    async with running_app(settings, clock) as api:
        dispatcher: Dispatcher = api.app.state.services.dispatcher  # type: ignore[attr-defined]
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        auth = {"Authorization": f"Bearer {WORKER_KEY}"}
        ids = []
        for work_type in ("development", "qa"):
            r = await api.post(
                "/api/v1/sessions",
                json={"issueId": "iss-r", "workType": work_type, "prompt": "p"},
                headers=admin,
            )
            ids.append(r.json()["sessionId"])
        holder, parked = ids
        reg = await api.post(
            "/api/workers/register", json={"hostname": "h", "capacity": 1}, headers=auth
        )
        wid = reg.json()["workerId"]
        await api.get(f"/api/workers/{wid}/poll", headers=auth)
        clock.advance(500)
        # The worker leaves; its session goes back to the queue still holding the issue.
        await api.delete(f"/api/workers/{wid}", headers=auth)
        clock.advance(500)  # past the lock's first TTL, within the renewed one
        assert (await dispatcher.reap()).promoted == []
        assert (await dispatcher.get_session(holder)).status == "pending"
        assert (await dispatcher.get_session(parked)).status == "parked"
