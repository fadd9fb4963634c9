"""The environment work queue: a work item is a view of a session queued in an environment.

States map onto the session row: queued = pending; starting = claimed (acknowledged);
active = running (heartbeating); stopping = live with a stop requested; stopped = terminal.
A poll delivers without claiming; an item delivered but not acknowledged is delivered again
after the poller's reclaim window. Heartbeats keep a lease; when it expires the reaper puts
the item back in the queue."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shopfloor.service.counters import ENVIRONMENTS
from shopfloor.service.dispatch import Dispatcher
from shopfloor.service.environments import Environments, merge_metadata
from shopfloor.service.errors import (
    EnvironmentNotFound,
    HeartbeatPreconditionFailed,
    LeaseState,
    WorkConflict,
    WorkNotFound,
)
from shopfloor.service.notifier import Signals
from shopfloor.service.poll_records import PollRecords
from shopfloor.store import Store
from shopfloor.store.records import (
    CLAIMED,
    FINALIZING,
    PENDING,
    RUNNING,
    STOPPED,
    Expect,
    QueueStats,
    SessionEvent,
    SessionRecord,
)

QUEUED = "queued"
STARTING = "starting"
ACTIVE = "active"
STOPPING = "stopping"
WORK_STOPPED = "stopped"

WORK_PREFIX = "work_"
SESSION_PREFIX = "sess_"
# `expected_last_heartbeat=NO_HEARTBEAT`: the caller expects that no heartbeat was recorded.
NO_HEARTBEAT: Final = -1
DEFAULT_RECLAIM_MS = 5_000
DEFAULT_TTL_SECONDS = 60
MIN_TTL_SECONDS = 10
MAX_TTL_SECONDS = 600
POLLING_WINDOW_MS = 30_000
# A worker's poll is written down at most this often per queue: the stats count pollers over
# POLLING_WINDOW_MS, and a write per long poll (each under a second) would be most of what an
# idle long-polling fleet costs the database.
POLL_RECORD_EVERY_MS = 5_000
# Poll records of workers silent this long are dropped (random per-process worker ids would
# pile up otherwise), by each process at most once per FORGET_EVERY_MS per queue: dropping
# scans the queue's records, which cost more than the record itself when done every time.
FORGET_POLLERS_AFTER_MS = 3_600_000
FORGET_EVERY_MS = 60_000
# An empty long poll answers at a random point in the last fifth of its block_ms (a maximum by
# the protocol), so that workers that started together, who re-poll as soon as an answer
# comes, drift apart instead of arriving in one burst every block_ms.
HOLD_SPREAD = 0.2
ATTEMPTS = 5


# How long a poll's first look may rely on another poll's empty look instead of its own (see
# IdleLooks): the most it delays an item that becomes deliverable without a notification of
# this process, or the 404 of an environment deleted by another server process.
IDLE_LOOK_REUSE_MS = 100
IDLE_LOOKS_MAX = 10_000
NOT_READ: Final = -1  # EmptyLook.next_redelivery before anyone read it


@dataclass
class EmptyLook:
    at: int  # the look's clock, ms
    signals: Signals  # the notifier's mark for the queue, taken before the look
    # The earliest delivery among the queue's delivered, unacknowledged items (None: there is
    # none), read when the look is first relied on; NOT_READ until then.
    next_redelivery: int | None = NOT_READ


class IdleLooks:
    """The latest empty look at each queue in this process. A fleet of idle long-pollers
    would otherwise read the database on every poll (a thousand workers: a thousand reads a
    second) only to find, again, nothing. A later poll relies on an empty look instead of
    looking itself while:

    - no notification of the queue came since the look began: every enqueue, requeue and
      release notifies its queue, in every server process (a lost notification connection
      counts as a notification of every queue);
    - no delivered but unacknowledged item has become deliverable again: that happens
      without a notification, when the poll's redelivery bound (now - reclaim window)
      reaches the item's delivery time, so the earliest such time is read once per look
      relied on (`next_redelivery`), and a poll whose bound reaches it looks;
    - the look is at most IDLE_LOOK_REUSE_MS old, for whatever else could change the answer
      unannounced (the environment deleted by another server process)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._looks: dict[str, EmptyLook] = {}

    async def still_empty(
        self, queue: str, now: int, redeliver_before: int, signals: Signals
    ) -> bool:
        look = self._looks.get(queue)
        if look is None or look.signals != signals or not 0 <= now - look.at <= IDLE_LOOK_REUSE_MS:
            return False
        if look.next_redelivery == NOT_READ:
            look.next_redelivery = await self.store.next_redelivery(queue)
        return look.next_redelivery is None or redeliver_before < look.next_redelivery

    def found_empty(self, queue: str, now: int, signals: Signals) -> None:
        if queue not in self._looks and len(self._looks) >= IDLE_LOOKS_MAX:
            self._looks.clear()
        self._looks[queue] = EmptyLook(now, signals)

    def forget(self, queue: str) -> None:
        self._looks.pop(queue, None)


def work_id_for(session_id: str) -> str:
    return WORK_PREFIX + session_id.removeprefix(SESSION_PREFIX)


def session_id_for(work_id: str) -> str | None:
    if not work_id.startswith(WORK_PREFIX) or len(work_id) == len(WORK_PREFIX):
        return None
    return SESSION_PREFIX + work_id.removeprefix(WORK_PREFIX)


def work_state(s: SessionRecord) -> str:
    if s.status == PENDING:
        return QUEUED
    if s.is_terminal:
        return WORK_STOPPED
    if s.stop_requested_at is not None or s.status == FINALIZING:
        return STOPPING
    if s.status == CLAIMED:
        return STARTING
    return ACTIVE


def clamp_ttl(seconds: int) -> int:
    return max(MIN_TTL_SECONDS, min(MAX_TTL_SECONDS, seconds))


@dataclass(frozen=True)
class Heartbeat:
    last_heartbeat: int
    lease_extended: bool
    state: str
    ttl_seconds: int


@dataclass(frozen=True)
class WorkPage:
    items: list[SessionRecord]
    has_more: bool


class WorkQueue:
    def __init__(
        self, dispatcher: Dispatcher, default_ttl_seconds: int = DEFAULT_TTL_SECONDS
    ) -> None:
        # The lease of an item whose worker asks for no TTL (the SDK's worker asks none).
        self.default_ttl = clamp_ttl(default_ttl_seconds)
        self.store = dispatcher.store
        self.clock = dispatcher.clock
        self.notifier = dispatcher.notifier
        self.counters = dispatcher.counters
        self.environments = Environments(dispatcher.store, dispatcher.clock)
        self._poll_recorded: dict[tuple[str, str], int] = {}  # (environment, worker) -> ms
        self.polls = PollRecords(dispatcher.store)
        self._pollers_forgotten: dict[str, int] = {}  # environment -> ms
        self._idle = IdleLooks(dispatcher.store)

    async def close(self) -> None:
        await self.polls.close()

    async def _item(self, environment_id: str, work_id: str) -> SessionRecord:
        session_id = session_id_for(work_id)
        session = None if session_id is None else await self.store.get_session(session_id)
        if session is None or session.queue != environment_id:
            raise WorkNotFound(work_id)
        return session

    async def poll(
        self, environment_id: str, worker_id: str | None, block_ms: int | None, reclaim_ms: int
    ) -> SessionRecord | None:
        """Deliver the next item, waiting up to `block_ms` for one to arrive."""
        loop = asyncio.get_running_loop()
        hold_ms = (block_ms or 0) * (1 - HOLD_SPREAD * random.random())
        deadline = loop.time() + hold_ms / 1000
        look = self._first_look
        while True:
            remaining = deadline - loop.time()
            # Listen before looking, so an enqueue between the look and the wait wakes us.
            watch = self.notifier.watch(environment_id) if remaining > 0 else None
            try:
                item = await look(environment_id, worker_id, reclaim_ms)
                look = self._next_look
                if item is not None:
                    self.counters.count_claims(ENVIRONMENTS, [item], item.delivered_at or 0)
                if item is not None or watch is None:
                    return item
                if not await watch.wait(remaining):
                    # Nothing arrived in time. (An item that becomes deliverable again without
                    # a notification, its redelivery window passed, waits for the next poll
                    # that looks.)
                    return None
            finally:
                # Whatever ended this round (an item, a failed look, a cancel), it stops
                # listening; a wake-up it did not act on goes to the next waiter.
                if watch is not None:
                    watch.close()

    async def _first_look(
        self, environment_id: str, worker_id: str | None, reclaim_ms: int
    ) -> SessionRecord | None:
        """A poll's first look checks that the environment exists in the same statement (on
        Postgres, one round trip instead of two), then records the poll. It is skipped when
        another poll of this process looked at the queue moments ago and found it empty, and
        no notification came since (see IdleLooks)."""
        now = self.clock.now_ms()
        redeliver_before = now - reclaim_ms
        signals = self.notifier.signals(environment_id)
        if await self._idle.still_empty(environment_id, now, redeliver_before, signals):
            await self._record_poll_if_due(environment_id, worker_id)
            return None
        looked = await self.store.deliver_in_environment(
            environment_id, worker_id, now, redeliver_before
        )
        if not looked.environment_found:
            raise EnvironmentNotFound(environment_id)
        if looked.item is None:
            self._idle.found_empty(environment_id, now, signals)
        await self._record_poll_if_due(environment_id, worker_id)
        return looked.item

    async def _record_poll_if_due(self, environment_id: str, worker_id: str | None) -> None:
        if worker_id is not None and self._poll_record_due(environment_id, worker_id):
            await self._record_poll(environment_id, worker_id)

    def forget_idle(self, environment_id: str) -> None:
        """Forget that the queue was seen empty (its environment was deleted: the next poll
        must look, and find it gone)."""
        self._idle.forget(environment_id)

    async def _next_look(
        self, environment_id: str, worker_id: str | None, reclaim_ms: int
    ) -> SessionRecord | None:
        now = self.clock.now_ms()
        return await self.store.deliver_next(environment_id, worker_id, now, now - reclaim_ms)

    async def _record_poll(self, environment_id: str, worker_id: str) -> None:
        now = self.clock.now_ms()
        self.polls.add(environment_id, worker_id, now)
        last = self._pollers_forgotten.get(environment_id)
        if last is None or not 0 <= now - last < FORGET_EVERY_MS:
            if len(self._pollers_forgotten) >= 10_000:
                self._pollers_forgotten.clear()
            self._pollers_forgotten[environment_id] = now
            await self.store.forget_pollers(environment_id, now - FORGET_POLLERS_AFTER_MS)

    def _poll_record_due(self, environment_id: str, worker_id: str) -> bool:
        now = self.clock.now_ms()
        key = (environment_id, worker_id)
        last = self._poll_recorded.get(key)
        if last is not None and 0 <= now - last < POLL_RECORD_EVERY_MS:
            return False
        if len(self._poll_recorded) >= 100_000:  # bound the memory random worker ids take
            self._poll_recorded.clear()
        self._poll_recorded[key] = now
        return True

    async def ack(self, environment_id: str, work_id: str, worker_id: str | None) -> SessionRecord:
        await self.environments.get(environment_id)
        for _ in range(ATTEMPTS):
            s = await self._item(environment_id, work_id)
            state = work_state(s)
            if state in (STOPPING, WORK_STOPPED):
                raise WorkConflict(f"Work item {work_id} is {state}")
            holder = s.delivered_to
            if worker_id is not None and holder is not None and worker_id != holder:
                raise WorkConflict(f"Work item {work_id} was delivered to another worker")
            if state != QUEUED:
                return s  # acknowledging again is harmless
            now = self.clock.now_ms()
            holder = worker_id or holder
            updated = await self.store.update_session(
                s.id,
                Expect(s.worker_id, s.lease_epoch, (PENDING,)),
                {
                    "status": CLAIMED,
                    "lease_epoch": s.lease_epoch + 1,
                    "claimed_at": now,
                    "delivered_to": holder,
                    "lease_expires_at": now + self.default_ttl * 1000,
                    "lease_ttl_seconds": self.default_ttl,
                    "started_at": None,
                    "last_heartbeat_at": None,
                    "stop_requested_at": None,
                    "ended_at": None,
                    "updated_at": now,
                },
                SessionEvent(
                    session_id=s.id,
                    at=now,
                    kind="status",
                    status=CLAIMED,
                    reason=f"work acknowledged by {holder or 'an unnamed worker'}",
                ),
            )
            if updated is not None:
                return updated
        raise WorkConflict(f"Work item {work_id} is being changed concurrently")

    async def heartbeat(
        self,
        environment_id: str,
        work_id: str,
        expected: int | None,
        desired_ttl_seconds: int | None,
    ) -> Heartbeat:
        """Extend the lease. `expected` is the last heartbeat the caller saw (NO_HEARTBEAT for
        none, None to skip the check); a mismatch means another worker holds the item."""
        await self.environments.get(environment_id)
        for _ in range(ATTEMPTS):
            s = await self._item(environment_id, work_id)
            state = work_state(s)
            if state in (QUEUED, WORK_STOPPED):
                raise WorkConflict(
                    f"Work item {work_id} is {state}; only an acknowledged item takes heartbeats"
                )
            ttl = s.lease_ttl_seconds or self.default_ttl
            if desired_ttl_seconds is not None:
                ttl = clamp_ttl(desired_ttl_seconds)
            if state != STOPPING and expected is not None:
                wanted = None if expected == NO_HEARTBEAT else expected
                if wanted != s.last_heartbeat_at:
                    raise HeartbeatPreconditionFailed(
                        "expected_last_heartbeat does not match the last heartbeat",
                        LeaseState(
                            s.last_heartbeat_at, state, s.lease_ttl_seconds or self.default_ttl
                        ),
                    )
            now = self.clock.now_ms()
            # Strictly increasing, so each heartbeat's value names exactly one lease extension.
            beat = max(now, (s.last_heartbeat_at or 0) + 1)
            changes: dict[str, Any] = {
                "last_heartbeat_at": beat,
                "lease_expires_at": now + ttl * 1000,
                "lease_ttl_seconds": ttl,
                "updated_at": now,
            }
            event = None
            if state == STARTING:
                changes.update(status=RUNNING, started_at=now)
                event = SessionEvent(
                    session_id=s.id, at=now, kind="status", status=RUNNING, reason="first heartbeat"
                )
            updated = await self.store.update_session(
                s.id,
                Expect(
                    s.worker_id,
                    s.lease_epoch,
                    (s.status,),
                    columns={"last_heartbeat_at": s.last_heartbeat_at},
                ),
                changes,
                event,
            )
            if updated is not None:
                return Heartbeat(beat, True, work_state(updated), ttl)
        raise WorkConflict(f"Work item {work_id} is being changed concurrently")

    async def stop(
        self, environment_id: str, work_id: str, *, force: bool, worker_id: str | None
    ) -> SessionRecord:
        """Graceful stop asks an active item's worker to drain (stopping); a second graceful
        stop, a graceful stop of an item that never heartbeated or from its holder, or a forced
        stop ends it (stopped). Stopping a stopped item changes nothing."""
        await self.environments.get(environment_id)
        for _ in range(ATTEMPTS):
            s = await self._item(environment_id, work_id)
            state = work_state(s)
            if state == WORK_STOPPED:
                return s
            if state == QUEUED and not force:
                raise WorkConflict(
                    f"Work item {work_id} is queued; only a forced stop cancels queued work"
                )
            now = self.clock.now_ms()
            from_holder = worker_id is not None and worker_id == s.delivered_to
            if force or state != ACTIVE or from_holder:
                changes: dict[str, Any] = {
                    "status": STOPPED,
                    "ended_at": now,
                    "lease_expires_at": None,
                    "updated_at": now,
                }
                if not force:
                    changes["stop_requested_at"] = s.stop_requested_at or now
                event = SessionEvent(
                    session_id=s.id,
                    at=now,
                    kind="status",
                    status=STOPPED,
                    reason="work stopped (forced)" if force else "work stopped",
                )
            else:
                changes = {"stop_requested_at": now, "updated_at": now}
                event = SessionEvent(
                    session_id=s.id, at=now, kind="status", status=s.status, reason="stop requested"
                )
            updated = await self.store.update_session(
                s.id, Expect(s.worker_id, s.lease_epoch, (s.status,)), changes, event
            )
            if updated is not None:
                return updated
        raise WorkConflict(f"Work item {work_id} is being changed concurrently")

    async def stats(self, environment_id: str) -> QueueStats:
        await self.environments.get(environment_id)
        await self.polls.flush()  # this process's pollers counted at once
        now = self.clock.now_ms()
        return await self.store.queue_stats(
            environment_id, now - DEFAULT_RECLAIM_MS, now - POLLING_WINDOW_MS
        )

    async def list_page(
        self, environment_id: str, *, after: str | None, before: str | None, limit: int
    ) -> WorkPage:
        """Work items in queue order (ascending id); `after`/`before` are work ids."""
        await self.environments.get(environment_id)
        after_id = None if after is None else session_id_for(after)
        before_id = None if before is None else session_id_for(before)
        found = await self.store.list_queue(
            environment_id, after_id=after_id, before_id=before_id, limit=limit + 1
        )
        has_more = len(found) > limit
        items = found[-limit:] if before_id is not None else found[:limit]
        return WorkPage(items, has_more)

    async def get(self, environment_id: str, work_id: str) -> SessionRecord:
        await self.environments.get(environment_id)
        return await self._item(environment_id, work_id)

    async def update_metadata(
        self, environment_id: str, work_id: str, patch: Mapping[str, str | None]
    ) -> SessionRecord:
        await self.environments.get(environment_id)
        for _ in range(ATTEMPTS):
            s = await self._item(environment_id, work_id)
            if not patch:
                return s
            merged = merge_metadata(s.metadata or {}, patch)
            updated = await self.store.update_session(
                s.id,
                Expect(s.worker_id, s.lease_epoch, columns={"updated_at": s.updated_at}),
                {"metadata": merged, "updated_at": max(self.clock.now_ms(), s.updated_at + 1)},
                None,
            )
            if updated is not None:
                return updated
        raise WorkConflict(f"Work item {work_id} is being changed concurrently")
