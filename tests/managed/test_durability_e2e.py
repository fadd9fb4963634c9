"""Managed sessions survive what kills processes: a worker SIGKILLed in the middle of a tool
(its lease runs out, the item goes back to the queue, a new worker finishes the session), a
server SIGKILLed in the middle of a model call (a restarted server takes the turn over once
the dead one's lease ran out: the call is made again, no tool runs twice, no result is lost),
and the same flows on PostgreSQL with three server processes behind one port."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Backend
from tests.managed.e2e import SDKS, Rig, find, idles, rig, sdk_worker, wait_until
from tests.managed.fake_model import (
    Fail,
    FakeModel,
    result_texts,
    serve_fake_model,
    text,
    tool_calls,
)
from tests.managed.test_worker_e2e import TOOLSET, message, run_basic_session

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeModel]:
    with serve_fake_model() as f:
        yield f


@pytest.fixture(params=["sqlite", "postgres-3"])
def any_rig(request: pytest.FixtureRequest, fake: FakeModel, tmp_path: Path) -> Iterator[Rig]:
    if request.param == "sqlite":
        backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
        with rig(backend, fake, tmp_path) as r:
            yield r
        return
    pg: Backend = request.getfixturevalue("postgres")
    with rig(pg, fake, tmp_path, processes=3) as r:
        yield r


def test_a_new_worker_finishes_the_session_of_a_killed_one(any_rig: Rig, tmp_path: Path) -> None:
    r = any_rig
    name = f"killed-worker-{r.backend.name}-{tmp_path.name}"
    # The first run of the call starts and hangs; the run after the kill sees it started.
    command = "if [ -f started ]; then echo resumed; else touch started; sleep 120; fi"
    system = r.fake.script(name, tool_calls(("bash", {"command": command})), text("finished"))
    env_id, key = r.environment(name)
    user = r.user(key)
    agent = user.beta.agents.create(name=name, model="claude-test", system=system, tools=[TOOLSET])
    session = user.beta.sessions.create(
        agent=agent.id, environment_id=env_id, initial_events=[message("go")]
    )
    workdir = tmp_path / "work"
    with sdk_worker(r, "pinned", env_id, key, workdir) as first:
        wait_until("the tool to start", lambda: find(workdir, "started"))
        first.send_signal(signal.SIGKILL)
        first.wait()
    with sdk_worker(r, "pinned", env_id, key, workdir):
        wait_until("the session to finish", lambda: idles(user, session.id) >= 1, 90)
    requests = r.fake.seen(name)
    assert [t.strip() for t in result_texts(requests[-1].body)] == ["resumed"]
    calls = list(user.beta.sessions.events.list(session.id, types=["agent.tool_use"]))
    assert len(calls) == 1  # the call was emitted once; the second worker ran it again


def test_a_restarted_server_takes_over_a_turn_whose_model_call_it_lost(
    any_rig: Rig, tmp_path: Path
) -> None:
    r = any_rig
    name = f"restart-{r.backend.name}-{tmp_path.name}"
    hang = threading.Event()
    second_calls: list[int] = []

    def second(body: dict[str, Any]) -> dict[str, Any] | Fail:
        second_calls.append(1)
        if len(second_calls) == 1:
            return Fail(200, b"{}", release=hang)  # the server dies while this call hangs
        return tool_calls(("bash", {"command": "echo two >> log.txt"}))

    system = r.fake.script(
        name, tool_calls(("bash", {"command": "echo one >> log.txt"})), second, text("done")
    )
    env_id, key = r.environment(name)
    user = r.user(key)
    agent = user.beta.agents.create(name=name, model="claude-test", system=system, tools=[TOOLSET])
    session = user.beta.sessions.create(
        agent=agent.id, environment_id=env_id, initial_events=[message("go")]
    )
    workdir = tmp_path / "work"
    try:
        with sdk_worker(r, "pinned", env_id, key, workdir):
            r.fake.wait_for(name, 2, 60)  # the first tool ran; the second call hangs
            r.kill()
            r.start()
            wait_until("the turn to finish", lambda: idles(user, session.id) >= 1, 120)
    finally:
        hang.set()
    log = find(workdir, "log.txt")
    assert log is not None and log.read_text() == "one\ntwo\n"  # no tool ran twice
    assert len(second_calls) == 2  # the lost call was made again
    types = [e.type for e in user.beta.sessions.events.list(session.id)]
    assert types.count("agent.tool_use") == 2 and types.count("user.tool_result") == 2


@pytest.mark.parametrize("which", SDKS)
def test_three_postgres_processes_run_a_session_to_the_end(
    postgres: Backend, fake: FakeModel, which: str, tmp_path: Path
) -> None:
    """Every request may land on any of the three processes: the worker's stream on one,
    its results on another, the model call on a third; wake-ups cross over LISTEN/NOTIFY."""
    with rig(postgres, fake, tmp_path, processes=3) as r:
        run_basic_session(r, which, f"pg3-{which}", tmp_path / "work")
