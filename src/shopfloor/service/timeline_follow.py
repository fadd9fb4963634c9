"""Follow a session's timeline as it grows: every entry after `after`, then each new one as it
is written, until the session has ended and every entry has been given.

It reads the database every LOOK_EVERY_SECONDS while someone follows, so an entry written
through any server process reaches every follower, and the workers' hot path does no extra
work for them (no wake-up is published per entry)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from shopfloor.service.channel import SessionChannel
from shopfloor.store.records import SessionEvent

LOOK_EVERY_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
BATCH = 200


@dataclass(frozen=True)
class Ended:
    """The session ended, and every entry has been given."""

    status: str


@dataclass(frozen=True)
class Quiet:
    """Nothing new for KEEPALIVE_SECONDS (a stream sends a keep-alive)."""


async def follow(
    channel: SessionChannel,
    session_id: str,
    after: int,
    *,
    gone: Callable[[], Awaitable[bool]],
    lifetime_seconds: float,
) -> AsyncIterator[SessionEvent | Ended | Quiet]:
    """Entries after `after`, then new ones, until the session has ended (then `Ended`), the
    follower is `gone`, or `lifetime_seconds` have passed (the follower resumes after the
    last id it got)."""
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + lifetime_seconds
    quiet_since = loop.time()
    while loop.time() < ends_at and not await gone():
        session, events = await channel.timeline(session_id, after, BATCH)
        for ev in events:
            after = ev.id or after
            yield ev
        if events:
            quiet_since = loop.time()
        elif session.is_terminal:
            yield Ended(session.status)
            return
        elif loop.time() - quiet_since > KEEPALIVE_SECONDS:
            quiet_since = loop.time()
            yield Quiet()
        if len(events) < BATCH:
            await asyncio.sleep(LOOK_EVERY_SECONDS)
