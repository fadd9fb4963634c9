"""Live feeds: one reader per watched key in this process, shared by all of its watchers.

A key is a notifier topic (a run's `watch_key`, a session's timeline topic). While at least
one watcher in this process follows it, one reader task waits on the topic and, when woken
(by a writer in this process, by another process through the notifier's broadcast, or by its
own safety poll), reads what is new once and hands it to every watcher. A watcher has a
bounded queue: one that falls more than `queue_limit` items behind is cut off (its stream
ends; the client resumes after the last id it got), so a stalled client holds no unbounded
memory and never delays the others. The reader goes away with its last watcher.

Items carry ids that only grow. Each batch a reader hands out covers every item with
`start < id <= end`, so a watcher knows whether it holds everything up to a point: one that
joins behind a reader reads the gap itself. A watcher also reads its own backlog before it
joins, so a reader never pushes a long history into every queue.

While a process has a reader for a key it announces so (a publish on `INTEREST` + its own
token + key) every
`ANNOUNCE_SECONDS`, and every process remembers the keys watched anywhere for `REMOTE_SECONDS`;
`publish` sends a writer's wake-up only for a key someone watches, so an append nobody watches
costs no broadcast. A watcher that appears between a write and the announcement reaching the
writer's process is served by the reader's safety poll."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from shopfloor.service.notifier import Notifier, cancel_wait

log = logging.getLogger("shopfloor.live_feed")

T = TypeVar("T")
E = TypeVar("E")

PAGE = 1000  # items per read
QUEUE_LIMIT = 5000  # items a watcher may have waiting before it is cut off
SAFETY_SECONDS = 5.0  # a reader looks at least this often, woken or not
INTEREST = "live-watch:"
ANNOUNCE_SECONDS = 10.0
REMOTE_SECONDS = 30.0

Item = tuple[int, T]  # (id, value)
# Read the source's end first, then the items after a cursor: (items, the end or None).
Look = Callable[[int, int], Awaitable[tuple[Sequence[Item[T]], E | None]]]
# Only the items after a cursor (a watcher's own catch-up).
Read = Callable[[int, int], Awaitable[Sequence[Item[T]]]]


@dataclass(frozen=True)
class Batch(Generic[T, E]):
    """Every item with start < id <= end; `ended` once the source has ended after them."""

    start: int
    end: int
    items: Sequence[Item[T]]
    ended: E | None


@dataclass(frozen=True)
class Quiet:
    """Nothing came for the watcher's quiet period (a stream sends a keep-alive)."""


@dataclass(frozen=True)
class Ended(Generic[E]):
    """The source ended, and the watcher has been given every item."""

    value: E


class CutOff(Exception):
    """The watcher fell too far behind, or the shared reader failed: its stream ends and the
    client resumes after the last id it got."""


class _Watcher(Generic[T, E]):
    __slots__ = ("count", "cut", "pending", "start", "wake")

    def __init__(self, start: int) -> None:
        self.start = start  # the feed's cursor when this watcher joined
        self.pending: deque[Batch[T, E]] = deque()
        self.count = 0
        self.wake = asyncio.Event()
        self.cut: CutOff | None = None

    def put(self, batch: Batch[T, E], limit: int) -> None:
        if self.cut is not None:
            return
        self.pending.append(batch)
        self.count += len(batch.items)
        if self.count > limit:
            self.fail(CutOff(f"more than {limit} items waiting"))
        self.wake.set()

    def fail(self, reason: CutOff) -> None:
        self.cut = reason
        self.pending.clear()
        self.count = 0
        self.wake.set()

    async def next(self, seconds: float) -> Batch[T, E] | None:
        """The next batch, or None after `seconds` without one."""
        if not self.pending and self.cut is None:
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self.wake.wait()
        if self.cut is not None:
            raise self.cut
        if not self.pending:
            return None
        batch = self.pending.popleft()
        self.count -= len(batch.items)
        return batch


class _Feed(Generic[T, E]):
    def __init__(self, topic: str, cursor: int, look: Look[T, E], safety: float) -> None:
        self.topic = topic
        self.cursor = cursor  # every item up to here has been handed out
        self.look = look
        self.safety = safety
        self.watchers: set[_Watcher[T, E]] = set()
        self.task: asyncio.Task[None] | None = None
        self.announced = 0.0


class LiveFeeds:
    """This process's shared readers (see the module doc)."""

    def __init__(
        self,
        notifier: Notifier,
        *,
        page: int = PAGE,
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self.notifier = notifier
        self.page = page
        self.queue_limit = queue_limit
        self._feeds: dict[str, _Feed[object, object]] = {}
        self._remote: dict[str, float] = {}  # key -> until when some process watches it
        self._sending: set[asyncio.Future[None]] = set()  # wake-ups sent in the background
        self._me = uuid.uuid4().hex[:12] + ":"  # our own announcements come back to us
        notifier.listen_prefix(INTEREST, self._watched_elsewhere)

    # -- the writer's side --

    def watched(self, topic: str) -> bool:
        """Whether a watcher of `topic` is known in any process."""
        return topic in self._feeds or self._remote.get(topic, 0.0) > time.monotonic()

    async def publish(self, topic: str) -> None:
        """Wake the readers of `topic` in every process, if anyone watches it."""
        if self.watched(topic):
            await self.notifier.publish(topic)

    def poke(self, topic: str) -> None:
        """`publish` from code that cannot wait (a store observer): sent in the background."""
        if self.watched(topic):
            self._background(self.notifier.publish(topic))

    def _background(self, wake: Awaitable[None]) -> None:
        task = asyncio.ensure_future(wake)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _watched_elsewhere(self, announcement: str) -> None:
        sender, _, topic = announcement.partition(":")
        if sender + ":" == self._me:
            return
        now = time.monotonic()
        if len(self._remote) > 10_000:
            self._remote = {k: until for k, until in self._remote.items() if until > now}
        self._remote[topic] = now + REMOTE_SECONDS

    # -- the watcher's side --

    async def follow(
        self,
        topic: str,
        after: int,
        look: Look[T, E],
        read: Read[T],
        *,
        quiet_seconds: float,
        lifetime_seconds: float,
        safety_seconds: float = SAFETY_SECONDS,
    ) -> AsyncGenerator[Sequence[Item[T]] | Quiet | Ended[E]]:
        """Items after `after` in id order, each once; `Quiet` after `quiet_seconds` without
        any; `Ended` last, once the source has ended. It stops after `lifetime_seconds` (the
        client resumes after the last id it got). Raises CutOff (see the class)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + lifetime_seconds
        seen = after
        while True:  # the backlog, read by this watcher alone
            items = await read(seen, self.page)
            if items:
                seen = items[-1][0]
                yield items
            if len(items) < self.page:
                break
        watcher = self._join(topic, seen, look, safety_seconds)
        try:
            if watcher.start > seen:  # the reader is ahead: what it handed out before we came
                async for items in self._gap(read, seen, watcher.start):
                    yield items
                seen = watcher.start
            while (left := until - loop.time()) > 0:
                batch = await watcher.next(min(quiet_seconds, left))
                if batch is None:
                    if left > quiet_seconds:
                        yield Quiet()
                    continue
                if batch.start > seen:
                    async for items in self._gap(read, seen, batch.start):
                        yield items
                fresh = [item for item in batch.items if item[0] > seen]
                seen = max(seen, batch.end)
                if fresh:
                    yield fresh
                if batch.ended is not None:
                    yield Ended(batch.ended)
                    return
        finally:
            self._leave(topic, watcher)

    async def _gap(self, read: Read[T], after: int, upto: int) -> AsyncIterator[Sequence[Item[T]]]:
        while after < upto:
            items = [item for item in await read(after, self.page) if item[0] <= upto]
            if items:
                yield items
                after = items[-1][0]
            if len(items) < self.page:
                return

    def _join(self, topic: str, cursor: int, look: Look[T, E], safety: float) -> _Watcher[T, E]:
        feed: _Feed[T, E] | None = self._feeds.get(topic)  # type: ignore[assignment]
        if feed is None:
            feed = _Feed(topic, cursor, look, safety)
            self._feeds[topic] = feed  # type: ignore[assignment]
            feed.task = asyncio.create_task(self._read(feed), name=f"live-feed {topic}")
        watcher: _Watcher[T, E] = _Watcher(feed.cursor)
        feed.watchers.add(watcher)
        return watcher

    def _leave(self, topic: str, watcher: _Watcher[T, E]) -> None:
        feed = self._feeds.get(topic)
        if feed is None or watcher not in feed.watchers:
            return
        feed.watchers.discard(watcher)
        if not feed.watchers:
            del self._feeds[topic]
            if feed.task is not None:
                feed.task.cancel()

    # -- the shared reader --

    async def _read(self, feed: _Feed[T, E]) -> None:
        try:
            while True:
                self._announce(feed)
                # Wait registered before the look: a write after the look still wakes us.
                waiter = asyncio.ensure_future(self.notifier.wait(feed.topic, feed.safety))
                try:
                    await asyncio.sleep(0)
                    items, end = await feed.look(feed.cursor, self.page)
                    done = end is not None and not items
                    if done and self._feeds.get(feed.topic) is feed:
                        del self._feeds[feed.topic]  # a newcomer starts a reader of its own
                    if items or done:
                        last = items[-1][0] if items else feed.cursor
                        batch = Batch(feed.cursor, last, items, end if done else None)
                        feed.cursor = last
                        for watcher in feed.watchers:
                            watcher.put(batch, self.queue_limit)
                    if done:
                        return
                    if len(items) < self.page:
                        await waiter
                finally:
                    await cancel_wait(waiter)
        except Exception as exc:
            log.warning("live feed %s failed: %s", feed.topic, exc)
            if self._feeds.get(feed.topic) is feed:
                del self._feeds[feed.topic]
            for watcher in feed.watchers:
                watcher.fail(CutOff(f"reading {feed.topic} failed"))

    def _announce(self, feed: _Feed[T, E]) -> None:
        now = time.monotonic()
        if now - feed.announced < ANNOUNCE_SECONDS:
            return
        feed.announced = now
        self._background(self.notifier.publish(INTEREST + self._me + feed.topic))
