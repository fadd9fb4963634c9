"""Property test of the queue engine: random interleavings of enqueue, register, poll, status
reports, heartbeats, deregistration, nacks and the passage of time (with reaper passes).

A model tracks who should hold each session using only what polls returned and which
sessions requeues reported. Two properties must hold after every step:
- a poll never hands out a session the model says is held by someone;
- a write succeeds only for the worker the model says holds the session (fencing)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shopfloor.clock import ManualClock
from shopfloor.service.dispatch import Dispatcher, NewSession, StatusReport
from shopfloor.service.errors import Conflict, InvalidTransition, NotOwner, WorkerNotFound
from shopfloor.store import Store, open_store
from shopfloor.store.records import LIVE_STATUSES, TERMINAL_STATUSES

REPORTS = ["running", "finalizing", "completed", "failed", "stopped"]


class DispatchMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.clock = ManualClock()
        self.store: Store = self.run(open_store(f"sqlite:///{Path(self.tmp.name) / 'p.db'}"))
        self.dispatcher = Dispatcher(
            self.store, self.clock, worker_ttl_seconds=30, claim_ttl_seconds=20
        )
        self.sessions: list[str] = []
        self.workers: list[str] = []
        self.holder: dict[str, str] = {}  # session -> worker, per the model
        self.settled: set[str] = set()

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()
        self.tmp.cleanup()

    def _released(self, session_ids: list[str]) -> None:
        for sid in session_ids:
            self.holder.pop(sid, None)

    @rule(priority=st.integers(1, 5))
    def enqueue(self, priority: int) -> None:
        s = self.run(self.dispatcher.create_session(NewSession(prompt="p", priority=priority)))
        self.sessions.append(s.id)

    @rule(capacity=st.integers(1, 3))
    def register(self, capacity: int) -> None:
        w = self.run(
            self.dispatcher.register_worker(
                hostname="h", capacity=capacity, version=None, projects=None
            )
        )
        self.workers.append(w.id)

    @precondition(lambda self: self.workers)
    @rule(data=st.data())
    def poll(self, data: st.DataObject) -> None:
        wid = data.draw(st.sampled_from(self.workers))
        try:
            claimed = self.run(self.dispatcher.poll(wid)).claimed
        except WorkerNotFound:
            return
        for s in claimed:
            assert s.id not in self.holder, (
                f"{s.id} handed to {wid} while held by {self.holder[s.id]}"
            )
            assert s.id not in self.settled
            self.holder[s.id] = wid

    @precondition(lambda self: self.workers and self.sessions)
    @rule(data=st.data(), status=st.sampled_from(REPORTS))
    def report(self, data: st.DataObject, status: str) -> None:
        sid = data.draw(st.sampled_from(self.sessions))
        wid = data.draw(st.sampled_from(self.workers))
        try:
            updated = self.run(self.dispatcher.report_status(sid, wid, StatusReport(status)))
        except NotOwner:
            assert self.holder.get(sid) != wid or sid in self.settled
            return
        except InvalidTransition:
            return
        assert self.holder.get(sid) == wid, f"{wid} wrote to {sid} held by {self.holder.get(sid)}"
        if updated.status in TERMINAL_STATUSES:
            self.settled.add(sid)

    @precondition(lambda self: self.workers)
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        wid = data.draw(st.sampled_from(self.workers))
        with contextlib.suppress(WorkerNotFound):
            self.run(self.dispatcher.heartbeat(wid, None))

    @precondition(lambda self: self.workers)
    @rule(data=st.data())
    def deregister(self, data: st.DataObject) -> None:
        wid = data.draw(st.sampled_from(self.workers))
        with contextlib.suppress(WorkerNotFound):
            self._released(self.run(self.dispatcher.deregister(wid)))

    @precondition(lambda self: self.holder)
    @rule(data=st.data())
    def nack(self, data: st.DataObject) -> None:
        sid, wid = data.draw(st.sampled_from(sorted(self.holder.items())))
        try:
            self.run(self.dispatcher.nack(sid, wid, "busy"))
        except (NotOwner, Conflict):  # lost it already, or it is past `claimed`
            return
        self._released([sid])

    @rule(seconds=st.sampled_from([1, 5, 15, 25, 40]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)
        report = self.run(self.dispatcher.reap())
        self._released(report.requeued)

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        for sid in self.sessions:
            s = self.run(self.store.get_session(sid))
            assert s is not None
            if s.status in LIVE_STATUSES:
                assert s.worker_id is not None and self.holder.get(sid) == s.worker_id
            if s.status == "pending":
                assert s.worker_id is None and sid not in self.holder

    @invariant()
    def no_worker_holds_more_than_its_capacity(self) -> None:
        for wid in self.workers:
            w = self.run(self.store.get_worker(wid))
            assert w is not None
            assert self.run(self.store.count_live_sessions(wid)) <= w.capacity


DispatchMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
test_dispatch_state_machine = DispatchMachine.TestCase
