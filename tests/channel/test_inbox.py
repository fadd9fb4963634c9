"""Inbox over a real server: operator stop / prompt / nudge reach the right worker on its
poll, urgent lane first, stay until acknowledged, and are archived when the session ends."""

from __future__ import annotations

from typing import Any

from tests.channel.conftest import Server, Worker, create_session, timeline


def messages(poll: dict[str, Any], sid: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = poll["inboxMessages"].get(sid, [])
    return found


def ack(worker: Worker, sid: str, message: dict[str, Any]) -> Any:
    reply = worker.post(
        f"/api/sessions/{sid}/inbox/ack", {"messageId": message["id"], "lane": message["lane"]}
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_prompt_and_stop_reach_the_owner_and_are_acknowledged(server: Server) -> None:
    admin = server.admin()
    a_sid = create_session(admin, issueId="iss-a", issueIdentifier="ENG-1")["sessionId"]
    a = Worker(server.url, capacity=1)
    assert a.poll()["claimedSessionIds"] == [a_sid]
    b_sid = create_session(admin, issueId="iss-b", issueIdentifier="ENG-2")["sessionId"]
    b = Worker(server.url, capacity=1)
    assert b.poll()["claimedSessionIds"] == [b_sid]
    a.run(a_sid)
    b.run(b_sid)

    reply = admin.post(f"/api/v1/sessions/{a_sid}/prompt", json={"text": "Also fix the tests"})
    assert reply.status_code == 201, reply.text
    assert reply.json()["type"] == "directive" and reply.json()["lane"] == "urgent"
    admin.post(f"/api/v1/sessions/{a_sid}/nudge", json={"text": "ping"})

    assert b.poll()["hasInboxMessages"] is False  # only the owner hears its session's inbox
    poll = a.poll()
    assert poll["hasInboxMessages"] is True
    got = messages(poll, a_sid)
    assert [(m["type"], m["lane"]) for m in got] == [("directive", "urgent"), ("nudge", "normal")]
    directive = got[0]
    assert directive["payload"] == "Also fix the tests"
    assert directive["sessionId"] == a_sid and isinstance(directive["createdAt"], int)
    assert ack(a, a_sid, directive) == {"acknowledged": True}

    # The nudge was not acknowledged: it comes again (the reference would lose it).
    assert [m["type"] for m in messages(a.poll(), a_sid)] == ["nudge"]
    ack(a, a_sid, got[1])
    assert a.poll()["hasInboxMessages"] is False

    reply = admin.post(f"/api/v1/sessions/{a_sid}/stop", json={"reason": "operator says stop"})
    assert reply.status_code == 200 and reply.json()["status"] == "stopped"
    # The worker's 5-second check sees it ...
    state = a.http.get(f"/api/sessions/{a_sid}/status").json()
    assert state["status"] == "stopped" and state["workerId"] == a.id
    # ... and its poll carries the stop message.
    stop = messages(a.poll(), a_sid)
    assert [(m["type"], m["lane"], m["payload"]) for m in stop] == [
        ("stop", "urgent", "operator says stop")
    ]
    assert b.poll()["hasInboxMessages"] is False
    # What the TS worker does next: `finalizing` (accepted, no change), milestone, ACK.
    assert a.status(a_sid, "finalizing").status_code == 200
    reply = a.post(f"/api/sessions/{a_sid}/progress", {"workerId": a.id, "milestone": "stopped"})
    assert reply.status_code == 200
    ack(a, a_sid, stop[0])
    assert a.poll()["hasInboxMessages"] is False

    inbox = admin.get(f"/api/v1/sessions/{a_sid}/inbox").json()
    assert [m["type"] for m in inbox] == ["directive", "nudge", "stop"]
    assert all(m["ackedAt"] for m in inbox)
    assert inbox[1]["deliveryCount"] == 2
    kinds = [e["type"] for e in timeline(admin, a_sid)["activities"]]
    assert kinds.count("inbox") == 3 and kinds.count("inbox-ack") == 3
    # The stopped session released its slot: the worker can take new work.
    c_sid = create_session(admin)["sessionId"]
    assert a.poll()["claimedSessionIds"] == [c_sid]


def test_unacknowledged_messages_wait_for_the_next_owner_and_end_archived(
    server: Server,
) -> None:
    admin = server.admin()
    sid = create_session(admin)["sessionId"]
    first = Worker(server.url)
    first.poll()
    first.run(sid)
    admin.post(f"/api/v1/sessions/{sid}/prompt", json={"text": "keep going"})
    assert [m["type"] for m in messages(first.poll(), sid)] == ["directive"]
    # The worker goes away without acknowledging; the session is requeued.
    assert first.http.delete(f"/api/workers/{first.id}").json()["unclaimedSessions"] == [sid]
    second = Worker(server.url)
    poll = second.poll()
    assert poll["claimedSessionIds"] == [sid]
    assert [m["payload"] for m in messages(poll, sid)] == ["keep going"]
    second.run(sid)
    second.finish(sid)
    # Ending the session archives its inbox: nothing is delivered any more.
    assert second.poll()["hasInboxMessages"] is False
    inbox = admin.get(f"/api/v1/sessions/{sid}/inbox").json()
    assert inbox[0]["archivedAt"] is not None and inbox[0]["ackedAt"] is None
    reply = admin.post(f"/api/v1/sessions/{sid}/prompt", json={"text": "too late"})
    assert reply.status_code == 409


def test_urgent_lane_first_and_at_most_ten_per_lane(server: Server) -> None:
    admin = server.admin()
    sid = create_session(admin)["sessionId"]
    worker = Worker(server.url)
    worker.poll()
    for i in range(12):
        admin.post(f"/api/v1/sessions/{sid}/nudge", json={"text": f"n{i}"})
    for i in range(11):
        admin.post(f"/api/v1/sessions/{sid}/prompt", json={"text": f"p{i}"})
    got = messages(worker.poll(), sid)
    assert [m["payload"] for m in got] == [f"p{i}" for i in range(10)] + [
        f"n{i}" for i in range(10)
    ]
    for m in got:
        ack(worker, sid, m)
    rest = messages(worker.poll(), sid)
    assert [m["payload"] for m in rest] == ["p10", "n10", "n11"]


def test_stop_of_a_queued_session_and_inbox_validation(server: Server) -> None:
    admin = server.admin()
    sid = create_session(admin)["sessionId"]
    reply = admin.post(f"/api/v1/sessions/{sid}/stop")
    assert reply.status_code == 200 and reply.json()["status"] == "stopped"
    worker = Worker(server.url)
    poll = worker.poll()
    assert poll["work"] == [] and poll["hasInboxMessages"] is False
    assert admin.get(f"/api/v1/sessions/{sid}/inbox").json() == []  # nobody to tell
    assert admin.post("/api/v1/sessions/sess_nope/stop").status_code == 404
    reply = admin.post(f"/api/v1/sessions/{sid}/prompt", json={})
    assert reply.status_code == 400 and reply.json()["message"].startswith("text:")
    reply = worker.post(f"/api/sessions/{sid}/inbox/ack", {"messageId": "m", "lane": "slow"})
    assert reply.json() == {"error": "Bad Request", "message": 'lane must be "urgent" or "normal"'}
    reply = worker.post(f"/api/sessions/{sid}/inbox/ack", {"messageId": "m", "lane": "urgent"})
    assert reply.json() == {"acknowledged": False}


def test_cli_prompt_nudge_and_stop(server: Server) -> None:
    admin = server.admin()
    sid = create_session(admin)["sessionId"]
    worker = Worker(server.url)
    worker.poll()
    worker.run(sid)
    assert server.cli("sessions", "prompt", sid, "Use the new API").returncode == 0
    assert server.cli("sessions", "nudge", sid).returncode == 0
    result = server.cli("sessions", "stop", sid, "--reason", "done here")
    assert result.returncode == 0 and "stopped" in result.stdout
    # The stop ended the session, which archived what it had not yet delivered.
    got = messages(worker.poll(), sid)
    assert [(m["type"], m["payload"]) for m in got] == [("stop", "done here")]
    inbox = admin.get(f"/api/v1/sessions/{sid}/inbox").json()
    assert [(m["type"], m["payload"], bool(m["archivedAt"])) for m in inbox] == [
        ("directive", "Use the new API", True),
        ("nudge", "", True),
        ("stop", "done here", False),
    ]
    failed = server.cli("sessions", "stop", "sess_nope")
    assert failed.returncode == 1 and "404" in failed.stdout
