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
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("shopfloor.notifier")


class Notifier(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def notify(self, queue: str) -> None: ...
    async def wait(self, queue: str, seconds: float) -> bool:
        """Wait until `queue` is notified or `seconds` pass; True if notified."""
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
        # Per queue, the waiters in arrival order (a dict as an ordered set).
        self._waiters: dict[str, dict[asyncio.Event, None]] = defaultdict(dict)
        self._listeners: dict[str, list[Callable[[], None]]] = defaultdict(list)
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
        self._call_listeners(queue)
        for event in self._waiters.get(queue, ()):
            if not event.is_set():
                event.set()
                return

    def wake_every(self, topic: str) -> None:
        self._call_listeners(topic)
        for event in self._waiters.get(topic, ()):
            event.set()

    def _call_listeners(self, topic: str) -> None:
        for callback in self._listeners.get(topic, ()):
            callback()
        for prefix, named in self._prefix_listeners:
            if topic.startswith(prefix):
                named(topic[len(prefix) :])

    async def wait(self, queue: str, seconds: float) -> bool:
        event = asyncio.Event()
        waiters = self._waiters[queue]
        waiters[event] = None
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await event.wait()
            return event.is_set()
        except asyncio.CancelledError:
            # Woken, then cancelled before it could act: the wake-up goes to the next waiter.
            if event.is_set():
                waiters.pop(event, None)
                self.wake(queue)
            raise
        finally:
            waiters.pop(event, None)
            if not waiters:
                self._waiters.pop(queue, None)

    def waiting(self, queue: str) -> int:
        """How many waiters wait on `queue` in this process."""
        return len(self._waiters.get(queue, ()))

    def waiting_total(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    def wake_all(self) -> None:
        """Every listener, and every waiter on every queue (after a lost connection,
        notifications may have been lost)."""
        for callbacks in self._listeners.values():
            for callback in callbacks:
                callback()
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()


class Broadcast(Protocol):
    """A channel to every other server process (PostgreSQL LISTEN/NOTIFY in the store)."""

    async def start(
        self, on_message: Callable[[str], None], on_reconnect: Callable[[], None]
    ) -> None: ...
    async def close(self) -> None: ...
    async def send(self, payload: str) -> None: ...


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

    async def start(self) -> None:
        await self.channel.start(self._received, self.wake_all)

    def _received(self, payload: str) -> None:
        if payload.startswith(PUBLISH_MARK):
            self.wake_every(payload[len(PUBLISH_MARK) :])
        else:
            self.wake(payload)

    async def publish(self, topic: str) -> None:
        self.wake_every(topic)
        try:
            await self.channel.send(PUBLISH_MARK + topic)
        except Exception as exc:
            log.warning("could not broadcast a wake-up for topic %r: %s", topic, exc)

    async def close(self) -> None:
        await self.channel.close()
        await super().close()

    async def notify(self, queue: str) -> None:
        self.wake(queue)
        try:
            await self.channel.send(queue)
        except Exception as exc:
            log.warning("could not broadcast a wake-up for queue %r: %s", queue, exc)
