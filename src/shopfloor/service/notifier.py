"""Wake-ups for long polls. An enqueue calls `notify(queue)`; a poll waiting on that queue
returns at once. In-process here; a PostgreSQL implementation carries the same signal across
server processes with LISTEN/NOTIFY.

`publish(topic)` is the other kind of signal: it wakes every waiter on the topic, not one
(a new event of a managed session, which every stream watching it and the process running
its turn must see). `listen(topic, callback)` calls back on every signal of a topic, in
whichever process it was sent (a revocation, which every process must apply)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

log = logging.getLogger("shopfloor.notifier")


class Notifier(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def notify(self, queue: str) -> None: ...
    async def wait(self, queue: str, seconds: float) -> bool:
        """Wait until `queue` is notified or `seconds` pass; True if notified."""
        ...

    def watch(self, queue: str) -> Watch:
        """Start waiting on `queue` now, without a task: `wait` as one `Watch`, for a caller
        that must be listening before it looks (and then closes the watch)."""
        ...

    def signals(self, queue: str) -> Signals:
        """A mark that changes whenever `queue` may have been notified since it was taken
        (each notification in this process or received from another, and a lost
        connection); equal marks mean no notification came between them."""
        ...

    async def publish(self, topic: str) -> None:
        """Wake every waiter on `topic`, in every process."""
        ...

    def listen(self, topic: str, callback: Callable[[], None]) -> None:
        """Call `callback` on every signal of `topic` (from any process), and whenever
        signals may have been missed (a lost connection)."""
        ...

    def listen_prefix(self, prefix: str, callback: Callable[[str], None]) -> None:
        """Call `callback` with the rest of the topic on every signal of a topic that starts
        with `prefix` (from any process)."""
        ...

    def waiting_total(self) -> int:
        """How many waiters wait in this process, on every queue and topic."""
        ...


# (epoch, notifications of the queue in this epoch): see Notifier.signals.
Signals = tuple[int, int]
# Queues whose notifications are counted; past this many the counts start over in a new epoch.
SIGNALLED_QUEUES_MAX = 10_000


class Watch:
    """One waiter on one queue, in its notifier's waiting line from the moment it is made.
    `wait` may be called once; `close` must follow (in a finally): it leaves the line and, if
    a wake-up reached this watch but no `wait` took it, hands it to the next waiter."""

    __slots__ = ("_notifier", "_queue", "_taken", "_woken")

    def __init__(self, notifier: LocalNotifier, queue: str) -> None:
        self._notifier = notifier
        self._queue = queue
        self._woken: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._taken = False
        notifier._waiters[queue][self._woken] = None

    async def wait(self, seconds: float) -> bool:
        """Until woken (True) or `seconds` pass (False)."""
        woken = self._woken
        if not woken.done():
            expire = asyncio.get_running_loop().call_later(seconds, _time_up, woken)
            try:
                # Cancelled after a wake-up reached it, close() passes the wake-up on.
                await woken
            finally:
                expire.cancel()
        self._taken = True
        return woken.result()

    def close(self) -> None:
        waiters = self._notifier._waiters.get(self._queue)
        if waiters is not None:
            waiters.pop(self._woken, None)
            if not waiters:
                del self._notifier._waiters[self._queue]
        woken = self._woken
        if not woken.done():
            woken.cancel()
        elif not self._taken and not woken.cancelled() and woken.result():
            self._notifier._wake_one(self._queue)


def _time_up(woken: asyncio.Future[bool]) -> None:
    if not woken.done():
        woken.set_result(False)


async def cancel_wait(task: asyncio.Future[Any]) -> None:
    """Cancel a wait (or any task) and let it finish unwinding."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class LocalNotifier:
    """Wakes waiters in this process only. A notification stands for one new item, so it
    wakes one waiter, the longest waiting: waking every poll on the queue for each item would
    have a fleet of long-polling workers race for it, and all but one query for nothing."""

    def __init__(self) -> None:
        # Per queue, the waiters in arrival order (a dict as an ordered set); a waiter is a
        # future its wake-up sets to True (and its timeout to False).
        self._waiters: dict[str, dict[asyncio.Future[bool], None]] = defaultdict(dict)
        self._listeners: dict[str, list[Callable[[], None]]] = defaultdict(list)
        self._signalled: dict[str, int] = {}
        self._epoch = 0
        self._prefix_listeners: list[tuple[str, Callable[[str], None]]] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._wake_waiters()

    async def notify(self, queue: str) -> None:
        self.wake(queue)

    async def publish(self, topic: str) -> None:
        self.wake_every(topic)

    def listen(self, topic: str, callback: Callable[[], None]) -> None:
        self._listeners[topic].append(callback)

    def listen_prefix(self, prefix: str, callback: Callable[[str], None]) -> None:
        self._prefix_listeners.append((prefix, callback))

    def wake(self, queue: str) -> None:
        self._count_signal(queue)
        self._call_listeners(queue)
        self._wake_one(queue)

    def _wake_one(self, queue: str) -> None:
        for woken in self._waiters.get(queue, ()):
            if not woken.done():
                woken.set_result(True)
                return

    def wake_every(self, topic: str) -> None:
        self._call_listeners(topic)
        for woken in self._waiters.get(topic, ()):
            if not woken.done():
                woken.set_result(True)

    def _count_signal(self, queue: str) -> None:
        if queue not in self._signalled and len(self._signalled) >= SIGNALLED_QUEUES_MAX:
            self._new_epoch()
        self._signalled[queue] = self._signalled.get(queue, 0) + 1

    def _new_epoch(self) -> None:
        self._signalled.clear()
        self._epoch += 1

    def signals(self, queue: str) -> Signals:
        return self._epoch, self._signalled.get(queue, 0)

    def _call_listeners(self, topic: str) -> None:
        for callback in self._listeners.get(topic, ()):
            callback()
        for prefix, named in self._prefix_listeners:
            if topic.startswith(prefix):
                named(topic[len(prefix) :])

    async def wait(self, queue: str, seconds: float) -> bool:
        watch = Watch(self, queue)
        try:
            return await watch.wait(seconds)
        finally:
            watch.close()

    def watch(self, queue: str) -> Watch:
        return Watch(self, queue)

    def waiting(self, queue: str) -> int:
        """How many waiters wait on `queue` in this process."""
        return len(self._waiters.get(queue, ()))

    def waiting_total(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    def wake_all(self) -> None:
        """Every listener, and every waiter on every queue (after a lost connection,
        notifications may have been lost)."""
        self._new_epoch()
        for callbacks in self._listeners.values():
            for callback in callbacks:
                callback()
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        for waiters in self._waiters.values():
            for woken in waiters:
                if not woken.done():
                    woken.set_result(True)


class Broadcast(Protocol):
    """A channel to every other server process (PostgreSQL LISTEN/NOTIFY in the store)."""

    async def start(
        self, on_message: Callable[[str], None], on_reconnect: Callable[[], None]
    ) -> None: ...
    async def close(self) -> None: ...
    async def send(self, payload: str) -> None: ...
    async def send_all(self, payloads: Sequence[str]) -> None: ...


# A broadcast payload that starts with this wakes every waiter on the rest (publish); any
# other payload is a queue name and wakes one (notify). No queue name starts with it.
PUBLISH_MARK = "*"


class BroadcastNotifier(LocalNotifier):
    """Wakes waiters in this process at once and in every other process through a broadcast
    channel whose payload is the queue name. A failed broadcast never fails the enqueue that
    caused it: the other processes' polls then simply run to their timeout."""

    def __init__(self, channel: Broadcast) -> None:
        super().__init__()
        self.channel = channel
        self._unsent: set[str] = set()  # topics published, not yet in a broadcast begun
        self._publishing = asyncio.Lock()

    async def start(self) -> None:
        await self.channel.start(self._received, self.wake_all)

    def _received(self, payload: str) -> None:
        if payload.startswith(PUBLISH_MARK):
            self.wake_every(payload[len(PUBLISH_MARK) :])
        else:
            self.wake(payload)

    async def publish(self, topic: str) -> None:
        """Returns once a broadcast that began after the call has carried `topic`. The
        topics published while one broadcast is under way go out together in the next: under
        a stream of appends to many runs, one round trip per turn instead of one per append,
        each waiting for the one before on the channel's single connection."""
        self.wake_every(topic)
        self._unsent.add(topic)
        async with self._publishing:
            if topic not in self._unsent:  # the broadcast just before carried it
                return
            topics, self._unsent = self._unsent, set()
            try:
                await self.channel.send_all([PUBLISH_MARK + t for t in sorted(topics)])
            except Exception as exc:
                log.warning("could not broadcast a wake-up for topics %s: %s", sorted(topics), exc)

    async def close(self) -> None:
        await self.channel.close()
        await super().close()

    async def notify(self, queue: str) -> None:
        self.wake(queue)
        try:
            await self.channel.send(queue)
        except Exception as exc:
            log.warning("could not broadcast a wake-up for queue %r: %s", queue, exc)
