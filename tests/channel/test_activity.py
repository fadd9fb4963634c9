"""Activity stream over a real server: every channel post is stored and readable, oldest first,
through the operator API and `shopfloor sessions show ID --follow`."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.channel.conftest import Server, Worker, create_session, timeline, wait_for


def test_channel_posts_are_stored_with_reference_replies(server: Server) -> None:
    admin = server.admin()
    sid = create_session(admin, issueIdentifier="ENG-1", workType="research")["sessionId"]
    worker = Worker(server.url)
    assert worker.poll()["claimedSessionIds"] == [sid]
    worker.run(sid)
    base = f"/api/sessions/{sid}"

    reply = worker.post(
        f"{base}/progress", {"workerId": worker.id, "milestone": "claimed", "message": "Picked up"}
    )
    assert reply.json() == {"posted": True, "milestone": "claimed"}
    reply = worker.post(
        f"{base}/activity",
        {
            "workerId": worker.id,
            "activity": {"type": "action", "content": "ls", "toolName": "Bash"},
        },
    )
    assert reply.json() == {"forwarded": True}
    reply = worker.post(
        f"{base}/external-urls",
        {"externalUrls": [{"label": "Pull Request", "url": "https://github.com/o/r/pull/1"}]},
    )
    assert reply.json()["updated"] is True
    error = {"workerId": worker.id, "toolName": "Bash", "errorMessage": "exit 1"}
    first = worker.post(f"{base}/tool-error", error).json()
    again = worker.post(f"{base}/tool-error", error).json()
    assert first["created"] is False and first["stored"] is True
    assert again["stored"] is False  # deduplicated per tool + message
    reply = worker.post(f"{base}/security-scan", {"workerId": worker.id, "event": {"n": 0}})
    assert reply.json() == {"stored": True}
    reply = worker.post(f"{base}/completion", {"summary": "All done"})
    assert reply.json()["posted"] is True
    worker.finish(sid)

    entries = timeline(admin, sid)["activities"]
    kinds = [e["type"] for e in entries]
    assert kinds == [
        "status",
        "status",
        "status",
        "progress",
        "activity",
        "external-urls",
        "tool-error",
        "security-scan",
        "completion",
        "status",
        "status",
    ]
    assert [e["status"] for e in entries if e["type"] == "status"] == [
        "pending",
        "claimed",
        "running",
        "finalizing",
        "completed",
    ]
    assert entries[4]["data"]["content"] == "ls"
    assert entries[8]["data"]["summary"] == "All done"
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids)
    newer = timeline(admin, sid, after=entries[7]["id"])["activities"]
    assert [e["type"] for e in newer] == ["completion", "status", "status"]


def test_only_the_lease_holder_may_write_and_bad_input_names_the_field(server: Server) -> None:
    admin = server.admin()
    sid = create_session(admin)["sessionId"]
    holder, other = Worker(server.url), Worker(server.url)
    holder.poll()
    holder.run(sid)
    # The TS activity emitter trips its circuit breaker on this exact 403 text.
    reply = other.post(
        f"/api/sessions/{sid}/activity",
        {"workerId": other.id, "activity": {"type": "thought", "content": "x"}},
    )
    assert reply.status_code == 403
    assert "owned by another worker" in reply.json()["message"]
    for path, body in (
        ("progress", {"workerId": other.id, "milestone": "started"}),
        ("tool-error", {"workerId": other.id, "toolName": "Bash", "errorMessage": "e"}),
        ("lock-refresh", {"workerId": other.id, "issueId": "iss"}),
        ("files/reserve", {"workerId": other.id, "filePaths": ["a"]}),
    ):
        reply = other.post(f"/api/sessions/{sid}/{path}", body)
        assert reply.status_code == 403, path
        assert reply.json()["message"] == "Session is owned by another worker"
    reply = holder.post(f"/api/sessions/{sid}/activity", {"workerId": holder.id, "activity": {}})
    assert reply.status_code == 400
    assert reply.json()["message"] == "activity with type and content is required"
    reply = holder.post(f"/api/sessions/{sid}/completion", {})
    assert reply.json() == {"error": "Bad Request", "message": "summary is required"}
    reply = holder.post(
        "/api/sessions/sess_missing/progress", {"workerId": holder.id, "milestone": "x"}
    )
    assert reply.status_code == 404
    assert [e["type"] for e in timeline(admin, sid)["activities"]] == ["status"] * 3


def test_sessions_show_follow_prints_the_timeline_live(server: Server) -> None:
    admin = server.admin()
    sid = create_session(admin)["sessionId"]
    worker = Worker(server.url)
    worker.poll()
    worker.run(sid)
    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shopfloor",
            "sessions",
            "show",
            sid,
            "--follow",
            "--json",
            "--interval",
            "0.2",
            "--url",
            server.url,
        ],
        env=server.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert follow.stdout is not None
    seen: list[dict[str, object]] = []

    def read_until(kind: str) -> bool:
        assert follow.stdout is not None
        line = follow.stdout.readline()
        if line:
            seen.append(json.loads(line))
        return any(e["type"] == kind for e in seen)

    wait_for(lambda: read_until("status") and len(seen) >= 3, what="the existing history")
    # Posted after the follower started: it must show up without restarting it.
    worker.post(
        f"/api/sessions/{sid}/activity",
        {"workerId": worker.id, "activity": {"type": "thought", "content": "thinking"}},
    )
    wait_for(lambda: read_until("activity"), what="the live activity")
    worker.finish(sid)
    out, _ = follow.communicate(timeout=30)
    assert follow.returncode == 0  # it stops by itself once the session has ended
    seen.extend(json.loads(line) for line in out.splitlines() if line)
    assert [e.get("data", {}).get("content") for e in seen if e["type"] == "activity"] == [
        "thinking"
    ]
    assert seen[-1]["status"] == "completed"
    plain = server.cli("sessions", "show", sid, "--follow")
    assert plain.returncode == 0
    assert "thinking" in plain.stdout and "ended: completed" in plain.stdout
