"""Follow a session's timeline as it grows: every entry after `after`, then each new one as it
is written, until the session has ended and every entry has been given.

The followers of a session in one process share one reader (service/live_feed.py). It is woken
when an entry is written (the store's `timeline_written` observer publishes the session's topic,
in every process, only while someone follows it), and looks every LOOK_EVERY_SECONDS as well,
for the entries written without a wake-up (claims) and for a follower that appeared in another
process just after a write."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from shopfloor.service import live_feed
from shopfloor.service.channel import SessionChannel
from shopfloor.service.live_feed import CutOff, Item, LiveFeeds
from shopfloor.store.records import SessionEvent

LOOK_EVERY_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


@dataclass(frozen=True)
class Ended:
    """The session ended, and every entry has been given."""

    status: str


@dataclass(frozen=True)
class Quiet:
    """Nothing new for KEEPALIVE_SECONDS (a stream sends a keep-alive)."""


def timeline_topic(session_id: str) -> str:
    """The topic a session's timeline followers wait on."""
    return f"timeline:{session_id}"


async def follow(
    channel: SessionChannel,
    live: LiveFeeds,
    session_id: str,
    after: int,
    *,
    gone: Callable[[], Awaitable[bool]],
    lifetime_seconds: float,
) -> AsyncIterator[SessionEvent | Ended | Quiet]:
    """Entries after `after`, then new ones, until the session has ended (then `Ended`), the
    follower is `gone`, or `lifetime_seconds` have passed (the follower resumes after the
    last id it got)."""

    async def read(after_id: int, limit: int) -> list[Item[SessionEvent]]:
        events = await channel.store.session_events_after(session_id, after_id, limit)
        return [(ev.id or after_id, ev) for ev in events]

    async def look(after_id: int, limit: int) -> tuple[list[Item[SessionEvent]], Ended | None]:
        session, events = await channel.timeline(session_id, after_id, limit)
        items = [(ev.id or after_id, ev) for ev in events]
        return items, Ended(session.status) if session.is_terminal and not items else None

    followed = live.follow(
        timeline_topic(session_id),
        after,
        look,
        read,
        quiet_seconds=KEEPALIVE_SECONDS,
        lifetime_seconds=lifetime_seconds,
        safety_seconds=LOOK_EVERY_SECONDS,
    )
    with contextlib.suppress(CutOff):
        async with contextlib.aclosing(followed):
            async for item in followed:
                if isinstance(item, live_feed.Quiet):
                    if await gone():
                        return
                    yield Quiet()
                elif isinstance(item, live_feed.Ended):
                    yield item.value
                    return
                else:
                    for _, event in item:
                        yield event
