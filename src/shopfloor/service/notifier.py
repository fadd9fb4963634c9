"""Wake-ups for long polls. An enqueue calls `notify(queue)`; a poll waiting on that queue
returns at once. In-process here; a PostgreSQL implementation carries the same signal across
server processes with LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Protocol


class Notifier(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def notify(self, queue: str) -> None: ...
    async def wait(self, queue: str, seconds: float) -> bool:
        """Wait until `queue` is notified or `seconds` pass; True if notified."""
        ...


class LocalNotifier:
    """Wakes waiters in this process only."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    async def notify(self, queue: str) -> None:
        self.wake(queue)

    def wake(self, queue: str) -> None:
        for event in self._waiters.get(queue, ()):
            event.set()

    async def wait(self, queue: str, seconds: float) -> bool:
        event = asyncio.Event()
        waiters = self._waiters[queue]
        waiters.add(event)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await event.wait()
            return event.is_set()
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(queue, None)
