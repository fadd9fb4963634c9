"""Following a run live against a real server process, on SQLite and PostgreSQL (where the
wake-up travels by LISTEN/NOTIFY): the run events route as server-sent events (each appended
event at once, resumed after Last-Event-ID, ended with the run), and `shopfloor runs show
--follow` on top of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopfloor.cli.main import GRACEFUL_SHUTDOWN_SECONDS
from tests.conftest import ADMIN_KEY, BACKENDS, Backend
from tests.veryfront.npm import ADMIN, serve_backend
from tests.veryfront.server import Server, serve

KIND = "live-view"


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from serve_backend(request.param, tmp_path_factory)


def leased_run(http: httpx.Client) -> tuple[dict[str, Any], str]:
    """A run admitted for a fresh worker key and claimed by it: (run, worker token)."""
    key = f"w-{uuid.uuid4().hex[:8]}"
    worker = http.post(
        "/agent-workers/projects/demo/workers",
        json={"implementation_kind": KIND, "worker_key": key},
    ).json()
    admission = {"mode": "worker", "implementation_kind": KIND, "worker_key": key}
    admitted = http.post(
        "/runs", json={"project_id": "demo", "config": {"agent_admission": admission}}
    )
    assert admitted.status_code == 202, admitted.text
    claimed = http.post(
        f"/agent-workers/workers/{worker['worker']['id']}/claim",
        json={"lease_duration_seconds": 60},
    )
    run: dict[str, Any] = claimed.json()["run"]
    assert run is not None
    return run, worker["token"]


def append(http: httpx.Client, run: dict[str, Any], text: str) -> None:
    reply = http.post(
        f"/conversations/{run['conversation_id']}/runs/{run['run_id']}/events",
        json={"events": [{"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": text}]},
    )
    assert reply.status_code == 200, reply.text


def messages(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The server-sent events of a response, as dicts of their fields."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


def test_events_stream_as_appended_resume_and_end_with_the_run(server: Server) -> None:
    stream_headers = {"Accept": "text/event-stream"}
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=10) as http:
        run, _ = leased_run(http)
        path = f"/runs/{run['run_id']}/events"
        append(http, run, "one")
        append(http, run, "two")
        with http.stream("GET", path, headers=stream_headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            seen = messages(response)
            first, second = next(seen), next(seen)
            assert [(m["id"], m["event"]) for m in (first, second)] == [
                ("1", "TEXT_MESSAGE_CONTENT"),
                ("2", "TEXT_MESSAGE_CONTENT"),
            ]
            assert json.loads(second["data"])["payload"]["delta"] == "two"
            started = time.monotonic()
            append(http, run, "three")
            third = next(seen)
            # Woken by the append, not found by a later look (the keep-alive is 15 s).
            assert time.monotonic() - started < 3
            assert (third["id"], json.loads(third["data"])["event_id"]) == ("3", 3)

        resumed = {**stream_headers, "Last-Event-ID": "2"}
        with http.stream("GET", path, headers=resumed) as response:
            seen = messages(response)
            assert next(seen)["id"] == "3"
            done = http.post(f"/runs/{run['run_id']}/complete", json={"status": "completed"})
            assert done.status_code == 200
            ended = next(seen)
            assert ended["event"] == "run.ended"
            final = json.loads(ended["data"])
            assert (final["run_id"], final["status"]) == (run["run_id"], "completed")
            assert list(seen) == []  # the server closes the stream

        # A finished run's stream sends what is left and ends at once.
        after = {**stream_headers, "Last-Event-ID": "3"}
        with http.stream("GET", path, headers=after) as response:
            assert [m["event"] for m in messages(response)] == ["run.ended"]
        bad = http.get(path, headers={**stream_headers, "Last-Event-ID": "x"})
        assert bad.status_code == 400
        detail = "Last-Event-ID must be an integer from 0 to 9223372036854775807"
        assert bad.json()["detail"] == detail


def cli(server: Server, *args: str) -> list[str]:
    return [sys.executable, "-m", "shopfloor", *args, "--url", server.url, "--admin-key", ADMIN_KEY]


def test_runs_show_follow_prints_events_until_the_run_ends(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=10) as http:
        run, token = leased_run(http)
        append(http, run, "before")
        follower = subprocess.Popen(
            cli(server, "runs", "show", run["run_id"], "--follow", "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert follower.stdout is not None
            first = json.loads(follower.stdout.readline())
            assert (first["event_id"], first["payload"]["delta"]) == (1, "before")
            append(http, run, "during")
            second = json.loads(follower.stdout.readline())
            assert (second["event_id"], second["payload"]["delta"]) == (2, "during")
            done = http.post(
                f"/runs/{run['run_id']}/complete",
                headers={"Authorization": f"Bearer {token}"},
                json={"status": "failed", "terminal_error_message": "gave up"},
            )
            assert done.status_code == 200
            final = json.loads(follower.stdout.readline())
            assert (final["status"], final["error"]) == ("failed", {"message": "gave up"})
            assert follower.wait(timeout=20) == 0
        finally:
            follower.kill()
            follower.wait()

    shown = subprocess.run(
        cli(server, "runs", "show", run["run_id"], "--follow"),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "TEXT_MESSAGE_CONTENT" in lines[0] and lines[0].endswith("before")
    assert lines[-1] == f"run {run['run_id']} ended: failed"
    missing = subprocess.run(
        cli(server, "runs", "show", "run_missing", "--follow"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "error 404: Run not found" in missing.stdout


def test_an_open_stream_does_not_hold_the_server_shutdown(tmp_path: Path) -> None:
    """SIGTERM cancels what still runs after the grace period (GRACEFUL_SHUTDOWN_SECONDS), so a
    follower that never hangs up delays a stop by seconds, not until it leaves."""
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    server_cm = serve(backend, tmp_path)
    srv = server_cm.__enter__()
    stopped = False
    try:
        admission = {"mode": "worker", "implementation_kind": KIND, "worker_key": "w"}
        admitted = httpx.post(
            f"{srv.url}/runs",
            headers=ADMIN,
            json={"project_id": "demo", "config": {"agent_admission": admission}},
        ).json()
        with httpx.stream(
            "GET",
            f"{srv.url}/runs/{admitted['run_id']}/events",
            headers={**ADMIN, "Accept": "text/event-stream"},
            timeout=30,
        ) as response:
            assert next(response.iter_lines()) == "retry: 1000"
            started = time.monotonic()
            server_cm.__exit__(None, None, None)
            stopped = True
            assert time.monotonic() - started < GRACEFUL_SHUTDOWN_SECONDS + 5
        assert "stopped cleanly" in srv.log.read_text()
    finally:
        if not stopped:
            server_cm.__exit__(None, None, None)
