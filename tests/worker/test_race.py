"""Two worker processes race for 200 sessions on one server: every session is run exactly
once (one agent run each; claimed again only after a release) and completed, on SQLite and
on PostgreSQL."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

from shopfloor.client import OperatorClient
from tests.conftest import ADMIN_KEY, Backend
from tests.processes.server import stop_cleanly
from tests.worker.conftest import Workers, agent_runs, start, wait_for

SESSIONS = 200


@pytest.mark.slow
def test_two_workers_run_200_sessions_exactly_once(
    backend: Backend, tmp_path: Path, repo: Path
) -> None:
    server = start(backend, tmp_path, name="race-server")
    pool = Workers(server.url, repo, tmp_path, tmp_path / "agent-runs.jsonl")
    try:
        a = pool.start(agent="claude", capacity=4)
        b = pool.start(agent="claude", capacity=4)
        ids = {a.worker_id(), b.worker_id()}
        with OperatorClient(server.url, ADMIN_KEY) as operator:
            created = [
                operator.create_session({"prompt": f"task {n}"})["sessionId"]
                for n in range(SESSIONS)
            ]

            def all_completed() -> bool:
                page = operator.list_sessions(status="completed", limit=500)
                return len(page["sessions"]) == SESSIONS

            wait_for(all_completed, 300, "every session to complete")
            runs = Counter(r["session"] for r in agent_runs(pool.agent_log))
            assert set(runs) == set(created)
            assert set(runs.values()) == {1}, [s for s, n in runs.items() if n > 1]
            by_worker: Counter[str] = Counter()
            for sid in created:
                session = operator.get_session(sid)
                # Claimed again only after it was released (a worker that found itself full
                # nacks a session it was offered): never held by two at once.
                statuses = [h["status"] for h in session["history"]]
                claims = [i for i, status in enumerate(statuses) if status == "claimed"]
                assert claims, session["history"]
                for before, after in itertools.pairwise(claims):
                    assert "pending" in statuses[before:after], session["history"]
                assert session["workerId"] in ids
                by_worker[session["workerId"]] += 1
        assert len(by_worker) == 2, by_worker  # both took part
        assert a.stop() == 0 and b.stop() == 0
        assert "Traceback" not in a.log() + b.log()
    finally:
        pool.stop_all()
        stop_cleanly(server)
