"""The agent loop's model calls, as leased work.

A model call is due when a session's turn is `model`. The process that made it due (the one
that stored the user message or the last tool result) claims the turn lease at once and makes
the call; the lease has an epoch, so only its holder can write the reply, and a write that
ends the turn early (an interrupt, a termination) bumps the epoch and fences the call out.
While the call runs, its process renews the lease and listens on the session's topic, so
such a write, made on any process, cancels the call at once.

If the process dies, its lease runs out and the upkeep of any process (run on every one, like
the reaper) claims the turn again and remakes the call from the stored transcript: the lost
call's reply was never stored, so no tool call is emitted twice and no stored result is lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict

from shopfloor.clock import Clock
from shopfloor.service.managed import events as ev
from shopfloor.service.managed import state
from shopfloor.service.managed.log import ManagedLog
from shopfloor.service.managed.model import (
    REQUEST_FAILED,
    ModelClient,
    ModelError,
    ModelReply,
    ModelRequest,
)
from shopfloor.service.managed.state import WORKER_CALL, LeaseLost
from shopfloor.service.managed.tools import toolbox
from shopfloor.service.managed.transcript import messages
from shopfloor.service.notifier import Notifier, cancel_wait
from shopfloor.store import Store
from shopfloor.store.managed_records import EventQuery, ManagedSessionRecord
from shopfloor.store.records import SessionEvent

log = logging.getLogger("shopfloor.turns")

DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_MAX_TOKENS = 8192
TRANSCRIPTS_KEPT = 256


class _NotDue(Exception):
    pass


class TurnRunner:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        notifier: Notifier,
        model: ModelClient,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier
        self.model = model
        self.lease_ms = int(lease_seconds * 1000)
        self.max_tokens = max_tokens
        self.log = ManagedLog(store, clock, notifier)
        # Who holds a turn lease: this runner (one per server process).
        self.owner = "turns_" + uuid.uuid4().hex[:16]
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._closed = False
        # The transcripts of the sessions whose calls this runner made last (see _transcript).
        self._transcripts: OrderedDict[str, tuple[int, list[SessionEvent]]] = OrderedDict()

    def kick(self, session_id: str) -> None:
        if self._closed:
            return
        self._again.add(session_id)
        if session_id not in self._tasks:
            self._start(session_id, None)

    def claim_with(self, row: ManagedSessionRecord, step: state.Step, now: int) -> state.Step:
        """Claim, in the write that makes the call due, unless this process is closing or
        already runs the session's turn (that task claims the next call itself)."""
        if self._closed or row.session_id in self._tasks:
            return step
        return state.claim_with(row, step, now, self.owner, self.lease_ms)

    def start_claimed(self, record: ManagedSessionRecord) -> None:
        if self._closed:
            return
        if record.session_id in self._tasks:
            self._again.add(record.session_id)
            return
        self._start(record.session_id, record)

    def _start(self, session_id: str, claimed: ManagedSessionRecord | None) -> None:
        task = asyncio.create_task(self._run(session_id, claimed), name=f"turn {session_id}")
        self._tasks[session_id] = task

    async def idle(self) -> None:
        """Wait until this runner runs no turn (tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- upkeep --

    async def upkeep(self) -> None:
        """Take over due turns whose lease is free or ran out, and queue the work item of a
        turn whose worker calls have no live item."""
        for session_id in await self.store.due_turns(self.clock.now_ms()):
            self.kick(session_id)
        for session_id in await self.store.stranded_turns():
            record = await self.store.get_managed_session(session_id)
            if record is not None and _waits_for_worker(record):
                await self.log.ensure_work_item(session_id, "tool calls wait for a worker")

    async def run_upkeep(self, interval_seconds: float) -> None:
        while True:
            try:
                await self.upkeep()
            except Exception:  # keep upkeep alive through a transient database error
                log.exception("managed-session upkeep failed")
            await asyncio.sleep(interval_seconds)

    # -- one session's turn --

    async def _run(self, session_id: str, claimed: ManagedSessionRecord | None) -> None:
        try:
            if claimed is not None and await self._call_once(session_id, claimed):
                self._again.add(session_id)
            while session_id in self._again:
                self._again.discard(session_id)
                while await self._call_once(session_id):
                    pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the turn of session %s failed; upkeep will retry it", session_id)
        finally:
            self._tasks.pop(session_id, None)

    async def _call_once(
        self, session_id: str, claimed: ManagedSessionRecord | None = None
    ) -> bool:
        """Claim the due model call (unless `claimed` shows it taken already), make it,
        write its outcome. True if another is due."""
        record = claimed
        if record is None:
            try:
                record, _, _ = await self.log.write(session_id, self._claim)
            except _NotDue:
                return False
        epoch = record.turn_epoch
        tools = toolbox(record.agent)
        outcome = await self._call_under_lease(record, epoch)
        if outcome is None:
            return False
        try:
            done, _, step = await self.log.write(
                session_id,
                lambda row, now: state.finish(row, now, self.owner, epoch, outcome, tools),
            )
        except LeaseLost:
            return False
        if step.needs_worker:
            await self.log.ensure_work_item(session_id, "tool calls wait for a worker")
        if isinstance(outcome, ModelReply) and outcome.usage:
            await self.log.record_usage(session_id, done.usage)
        return step.kick

    def _claim(self, row: ManagedSessionRecord, now: int) -> state.Step:
        claimed = state.claim(row, now, self.owner, self.lease_ms)
        if claimed is None:
            raise _NotDue
        return claimed[0]

    async def _call_under_lease(
        self, record: ManagedSessionRecord, epoch: int
    ) -> ModelReply | ModelError | None:
        """The model's answer, or None if the lease was lost while it ran (the call is then
        cancelled)."""
        request = await self._request(record)
        call = asyncio.ensure_future(self._call(request))
        keeper = asyncio.ensure_future(self._keep_lease(record.session_id, epoch))
        try:
            await asyncio.wait({call, keeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (call, keeper):
                if not task.done():
                    await cancel_wait(task)
        if not call.done() or call.cancelled():
            return None
        return call.result()

    async def _call(self, request: ModelRequest) -> ModelReply | ModelError:
        try:
            return await self.model.create(request)
        except ModelError as exc:
            return exc
        except Exception as exc:
            log.exception("model call failed unexpectedly")
            return ModelError(REQUEST_FAILED, f"The model call failed: {type(exc).__name__}")

    async def _request(self, record: ManagedSessionRecord) -> ModelRequest:
        transcript = await self._transcript(record.session_id)
        model = record.agent.get("model") or {}
        system = record.agent.get("system")
        return ModelRequest(
            model=str(model.get("id", "")),
            max_tokens=self.max_tokens,
            messages=messages(transcript),
            system=system if isinstance(system, str) else None,
            tools=toolbox(record.agent).definitions(),
        )

    async def _transcript(self, session_id: str) -> list[SessionEvent]:
        """The session's transcript events: those read before (kept for the sessions this
        process ran last), and what was appended since. The log only grows, and its events
        are numbered in commit order, so reading after the last one seen misses nothing."""
        last, known = self._transcripts.pop(session_id, (0, []))
        newer = await self.store.managed_events(
            session_id, EventQuery(kinds=ev.TRANSCRIPT_KINDS, after_id=last, limit=1_000_000)
        )
        events = known + newer
        self._transcripts[session_id] = (events[-1].id or last if events else last, events)
        while len(self._transcripts) > TRANSCRIPTS_KEPT:
            self._transcripts.popitem(last=False)
        return events

    async def _keep_lease(self, session_id: str, epoch: int) -> None:
        """Renew the lease while the call runs; return as soon as it is lost (a write on any
        process that ends the turn wakes us through the session's topic)."""
        topic = ev.topic(session_id)
        renew_every = self.lease_ms / 3000
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            remaining = renewed + renew_every - loop.time()
            if remaining > 0:
                await self.notifier.wait(topic, remaining)
            record = await self.store.get_managed_session(session_id)
            if record is None or not state.holds(record, self.owner, epoch):
                return
            if loop.time() - renewed >= renew_every:
                with contextlib.suppress(Exception):
                    await self.log.write(
                        session_id,
                        lambda row, now: state.renew(row, now, self.owner, epoch, self.lease_ms),
                    )
                renewed = loop.time()


def _waits_for_worker(record: ManagedSessionRecord) -> bool:
    return any(c["kind"] == WORKER_CALL and c["result"] is None for c in record.pending)
