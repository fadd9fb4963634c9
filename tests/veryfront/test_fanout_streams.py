"""Many live watchers of one run, against real server processes (the watchers of a run in one
process share one reader, service/live_feed.py): each gets every event exactly once and in
order, whenever it joined; one resuming with Last-Event-ID gets exactly the missing ones; on
PostgreSQL, watchers on two processes both get what a third process wrote."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, Backend
from tests.veryfront.npm import ADMIN, serve_backend
from tests.veryfront.server import Server, serve
from tests.veryfront.test_live_view import append, leased_run, messages

STREAM = {**ADMIN, "Accept": "text/event-stream"}


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from serve_backend(request.param, tmp_path_factory)


class Watcher(threading.Thread):
    """Reads a run's stream into `got` ((id, delta) of each event, then "run.ended")."""

    def __init__(self, url: str, run_id: str, last_event_id: int | None = None) -> None:
        super().__init__(daemon=True)
        self.url, self.run_id, self.last = url, run_id, last_event_id
        self.got: list[Any] = []
        self.open = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        headers = dict(STREAM)
        if self.last is not None:
            headers["Last-Event-ID"] = str(self.last)
        try:
            with (
                httpx.Client(base_url=self.url, timeout=30) as http,
                http.stream("GET", f"/runs/{self.run_id}/events", headers=headers) as response,
            ):
                assert response.status_code == 200, response.read()
                self.open.set()
                for message in messages(response):
                    if message.get("event") == "run.ended":
                        self.got.append("run.ended")
                        return
                    delta = json.loads(message["data"])["payload"]["delta"]
                    self.got.append((int(message["id"]), delta))
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.open.set()

    def result(self) -> list[Any]:
        self.join(30)
        assert not self.is_alive(), f"still watching; got {self.got}"
        assert self.error is None, self.error
        return self.got


def started(watcher: Watcher) -> Watcher:
    watcher.start()
    assert watcher.open.wait(30)
    return watcher


def test_every_watcher_gets_every_event_once_in_order_whenever_it_joined(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=10) as http:
        run, _ = leased_run(http)
        early = [started(Watcher(server.url, run["run_id"])) for _ in range(12)]
        late: list[Watcher] = []
        for n in range(1, 31):
            append(http, run, f"e{n}")
            if n in (5, 17):  # joining a live reader with a backlog of its own
                late += [started(Watcher(server.url, run["run_id"])) for _ in range(3)]
        resumed = started(Watcher(server.url, run["run_id"], last_event_id=20))
        done = http.post(f"/runs/{run['run_id']}/complete", json={"status": "completed"})
        assert done.status_code == 200, done.text
    every = [(n, f"e{n}") for n in range(1, 31)]
    for watcher in early + late:
        assert watcher.result() == [*every, "run.ended"]
    assert resumed.result() == [*every[20:], "run.ended"]


def test_a_resumed_watcher_gets_exactly_the_missing_events_then_the_live_ones(
    server: Server,
) -> None:
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=10) as http:
        run, _ = leased_run(http)
        live = started(Watcher(server.url, run["run_id"]))  # keeps the run's reader going
        for n in range(1, 7):
            append(http, run, f"e{n}")
        resumed = started(Watcher(server.url, run["run_id"], last_event_id=3))
        append(http, run, "e7")
        done = http.post(f"/runs/{run['run_id']}/complete", json={"status": "completed"})
        assert done.status_code == 200, done.text
    assert resumed.result() == [(n, f"e{n}") for n in range(4, 8)] + ["run.ended"]
    assert live.result() == [(n, f"e{n}") for n in range(1, 8)] + ["run.ended"]


def test_a_watcher_of_another_project_gets_no_stream(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=10) as http:
        run, _ = leased_run(http)
        other = http.post("/api/v1/registration-tokens", json={"project": "someone-else"})
        assert other.status_code == 201, other.text
        stranger = {"Authorization": f"Bearer {other.json()['token']}"}
        stream = http.get(
            f"/runs/{run['run_id']}/events", headers={**stranger, "Accept": "text/event-stream"}
        )
        assert stream.status_code in (403, 404), stream.text
        assert "text/event-stream" not in stream.headers.get("content-type", "")


@pytest.mark.slow
def test_watchers_on_two_processes_get_what_a_third_process_wrote(
    postgres: Backend, tmp_path: Path
) -> None:
    for name in ("one", "two", "three"):
        (tmp_path / name).mkdir()
    with (
        serve(postgres, tmp_path / "one") as one,
        serve(postgres, tmp_path / "two") as two,
        serve(postgres, tmp_path / "three") as three,
        httpx.Client(base_url=three.url, headers=ADMIN, timeout=10) as http,
    ):
        run, _ = leased_run(http)
        watchers = [started(Watcher(s.url, run["run_id"])) for s in (one, one, two, two)]
        for n in range(1, 6):
            append(http, run, f"e{n}")
        done = http.post(f"/runs/{run['run_id']}/complete", json={"status": "completed"})
        assert done.status_code == 200, done.text
        for watcher in watchers:
            assert watcher.result() == [(n, f"e{n}") for n in range(1, 6)] + ["run.ended"]
