"""A session's activities on their way to the server, bounded whatever the agent prints.

Like the af-worker's emitter, activities are sent in flushes at most every `interval`
seconds, and consecutive thoughts (and consecutive text lines of one stream) merge into one
activity. Every activity is cut to `MAX_CONTENT` characters and its tool input to
`MAX_TOOL_INPUT` characters of JSON, so each request stays far below the server's 1 MiB body
limit; at most `max_pending` activities wait, and what overflows is counted and reported
once as dropped. A 403 (the session's lease moved on) stops the stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from shopfloor.client import ApiError, NotOwner, Unreachable
from shopfloor.worker.output import Activity

log = logging.getLogger("shopfloor.worker")

MAX_CONTENT = 16_000  # characters (64 KB of UTF-8 at most)
MAX_TOOL_INPUT = 16_000  # characters of JSON
MERGEABLE = ("thought", "response", "error")

Post = Callable[[dict[str, Any]], Awaitable[None]]


def wire(activity: Activity) -> dict[str, Any]:
    """An activity as `POST /api/sessions/{id}/activity` carries it, bounded."""
    body: dict[str, Any] = {"type": activity.type, "content": _cut(activity.content)}
    if activity.tool_name:
        body["toolName"] = activity.tool_name[:200]
    if activity.tool_input is not None:
        text = json.dumps(activity.tool_input, default=str, ensure_ascii=False)
        body["toolInput"] = (
            activity.tool_input if len(text) <= MAX_TOOL_INPUT else {"truncated": _cut(text)}
        )
    return body


def _cut(text: str, limit: int = MAX_CONTENT) -> str:
    if len(text) <= limit:
        return text
    marker = f"\n… [{len(text) - limit} characters cut]"
    return text[: limit - len(marker)] + marker


class ActivityStream:
    def __init__(self, post: Post, interval: float = 0.5, max_pending: int = 200) -> None:
        self._post = post
        self._interval = interval
        self._max_pending = max_pending
        self._pending: list[Activity] = []
        self._dropped = 0
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._closed = False
        self.lost = False  # a 403: the session is no longer ours
        self.posted = 0

    def add(self, activity: Activity) -> None:
        if self._closed or self.lost:
            return
        last = self._pending[-1] if self._pending else None
        if (
            last is not None
            and last.type == activity.type
            and activity.type in MERGEABLE
            and last.tool_name is None
            and activity.tool_name is None
            and last.stream == activity.stream
            and len(last.content) + len(activity.content) < MAX_CONTENT
        ):
            last.content += "\n" + activity.content
        elif len(self._pending) >= self._max_pending:
            self._dropped += 1
        else:
            self._pending.append(activity)
        self._wake.set()

    async def run(self) -> None:
        """Flush whenever there is something to send, at most every `interval` seconds, until
        closed; the flush after `close` is the last and does not wait."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            closed = self._closed
            await self._flush()
            if closed:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._interval)

    def close(self) -> None:
        self._closed = True
        self._closing.set()
        self._wake.set()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if self._dropped:
            note = f"{self._dropped} activities dropped: the agent wrote faster than they are sent"
            batch.append(Activity("error", note))
            self._dropped = 0
        for activity in batch:
            if self.lost:
                return
            try:
                await self._post(wire(activity))
                self.posted += 1
            except NotOwner:
                self.lost = True
            except (ApiError, Unreachable) as exc:  # activities are best effort
                log.warning("activity not sent: %s", exc)
