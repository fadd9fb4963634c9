"""The shared reader of live streams (service/live_feed.py) over a source held in a list: every
watcher gets every item once and in order, one reader serves them all, a watcher that joins
behind the reader reads the gap itself, a stalled watcher is cut off with its queue emptied
without holding the others back, and writers publish only for keys someone watches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

import pytest

from shopfloor.service.live_feed import INTEREST, CutOff, Ended, Item, LiveFeeds, Quiet
from shopfloor.service.notifier import LocalNotifier

TOPIC = "source:1"


class ListSource:
    """Items 1, 2, 3 ... appended to a list; `ended` once the source has ended."""

    def __init__(self) -> None:
        self.items: list[Item[str]] = []
        self.ended = False
        self.looks = 0
        self.reads = 0
        self.gate = asyncio.Event()  # cleared: a catch-up read's answer is held back
        self.gate.set()

    def add(self, count: int) -> None:
        start = len(self.items)
        self.items.extend((n, f"item {n}") for n in range(start + 1, start + count + 1))

    async def look(self, after: int, limit: int) -> tuple[Sequence[Item[str]], str | None]:
        self.looks += 1
        ended = self.ended
        await asyncio.sleep(0)  # a database round trip
        items = [i for i in self.items if i[0] > after][:limit]
        return items, "the end" if ended and not items else None

    async def read(self, after: int, limit: int) -> Sequence[Item[str]]:
        self.reads += 1
        found = [i for i in self.items if i[0] > after][:limit]
        await self.gate.wait()
        return found


def watch(
    feeds: LiveFeeds, source: ListSource, after: int = 0
) -> AsyncGenerator[Sequence[Item[str]] | Quiet | Ended[str]]:
    return feeds.follow(
        TOPIC, after, source.look, source.read, quiet_seconds=30, lifetime_seconds=60
    )


async def collect(feeds: LiveFeeds, source: ListSource, after: int = 0) -> list[int | str]:
    got: list[int | str] = []
    async for item in watch(feeds, source, after):
        if isinstance(item, Ended):
            got.append(item.value)
        elif not isinstance(item, Quiet):
            got.extend(n for n, _ in item)
    return got


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_many_watchers_get_every_item_once_in_order_from_one_reader() -> None:
    notifier = LocalNotifier()
    feeds = LiveFeeds(notifier, page=7)
    source = ListSource()
    source.add(3)
    early = [asyncio.create_task(collect(feeds, source)) for _ in range(20)]
    await settle()
    for _ in range(10):
        source.add(5)
        await feeds.publish(TOPIC)
        await settle()
    late = [asyncio.create_task(collect(feeds, source, after=n)) for n in (0, 10, 40)]
    await settle()
    source.add(4)
    source.ended = True
    await feeds.publish(TOPIC)
    results = await asyncio.wait_for(asyncio.gather(*early, *late), 10)
    every = list(range(1, 58))
    assert results[:20] == [[*every, "the end"]] * 20
    assert results[20:] == [[*every, "the end"], [*every[10:], "the end"], [*every[40:], "the end"]]
    # One reader looked once per wake-up, not once per watcher.
    assert source.looks < 40, source.looks
    assert not feeds.watched(TOPIC)  # the reader went with its watchers


async def test_a_watcher_behind_the_reader_reads_the_gap_itself() -> None:
    feeds = LiveFeeds(LocalNotifier(), page=100)
    source = ListSource()
    source.add(6)
    first = asyncio.create_task(collect(feeds, source))
    await settle()  # the reader has handed out 1-6
    source.gate.clear()
    second = asyncio.create_task(collect(feeds, source, after=2))
    await settle()  # its own catch-up read found 3-6 and waits for its answer
    source.add(2)
    await feeds.publish(TOPIC)
    await settle()  # meanwhile the reader handed out 7-8, before the second watcher joined
    source.gate.set()
    await settle()
    source.ended = True
    await feeds.publish(TOPIC)
    assert await asyncio.wait_for(second, 5) == [3, 4, 5, 6, 7, 8, "the end"]
    assert await asyncio.wait_for(first, 5) == [1, 2, 3, 4, 5, 6, 7, 8, "the end"]
    assert source.reads >= 3  # the two catch-ups, and the second watcher's gap


async def test_a_stalled_watcher_is_cut_off_and_holds_no_queue_nor_the_others() -> None:
    feeds = LiveFeeds(LocalNotifier(), page=10, queue_limit=25)
    source = ListSource()
    stalled = watch(feeds, source)
    stalled_first = asyncio.create_task(anext(stalled))  # joins, then never reads again
    await settle()
    healthy = asyncio.create_task(collect(feeds, source))
    await settle()
    for _ in range(8):
        source.add(10)
        await feeds.publish(TOPIC)
        await settle()
    source.ended = True
    await feeds.publish(TOPIC)
    assert await asyncio.wait_for(healthy, 5) == [*range(1, 81), "the end"]
    first = await stalled_first
    assert not isinstance(first, Ended)
    with pytest.raises(CutOff):
        async for _ in stalled:
            pass


async def test_writers_publish_only_for_watched_keys() -> None:
    notifier = LocalNotifier()
    feeds = LiveFeeds(notifier)
    published: list[str] = []
    notifier.listen(TOPIC, lambda: published.append(TOPIC))
    await feeds.publish(TOPIC)
    assert published == []  # nobody watches: no wake-up sent
    source = ListSource()
    watcher = watch(feeds, source)
    task = asyncio.create_task(anext(watcher))
    await settle()
    assert feeds.watched(TOPIC)
    await feeds.publish(TOPIC)
    assert published == [TOPIC]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await watcher.aclose()
    # Another process's reader announces itself on the INTEREST prefix; it counts for a while.
    other = LiveFeeds(notifier)
    notifier.wake_every(INTEREST + "0123456789ab:source:2")
    assert other.watched("source:2")
