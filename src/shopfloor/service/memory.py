"""Agent memory: what the agents of one organisation's project remember across their sessions
(the MCP tools af_memory_remember / _recall / _forget). The tenant always comes from the
session the call is made for, never from the caller's arguments."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from shopfloor.clock import Clock
from shopfloor.service.errors import InvalidInput
from shopfloor.store import Store
from shopfloor.store.memory_records import MemoryHit, MemoryQuery, MemoryRecord
from shopfloor.store.records import SessionRecord

MAX_CONTENT_CHARS = 16_000
MAX_QUERY_CHARS = 1_000
MAX_QUERY_WORDS = 32
MAX_TAGS = 20
MAX_TAG_CHARS = 64
MAX_SCOPE_CHARS = 200
MAX_RESULTS = 50
DEFAULT_RESULTS = 10
# Recall with tags filters the ranked hits: this many are read per result asked for.
TAG_OVERFETCH = 10
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class MemoryContext:
    """Whose memory a call reads and writes: the session's organisation and project."""

    org_id: str
    project: str
    session_id: str
    agent_id: str | None

    @classmethod
    def of(cls, session: SessionRecord) -> MemoryContext:
        return cls(session.org_id, session.project or "", session.id, session.agent_id)


class Memory:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def remember(
        self, ctx: MemoryContext, content: str, tags: list[str], scope: str | None
    ) -> MemoryRecord:
        if not content.strip():
            raise InvalidInput("content", "content: must not be empty")
        if len(content) > MAX_CONTENT_CHARS:
            raise InvalidInput("content", f"content: at most {MAX_CONTENT_CHARS} characters")
        now = self.clock.now_ms()
        record = MemoryRecord(
            id=f"mem_{ctx.session_id}_{now}_{secrets.token_hex(4)}",
            org_id=ctx.org_id,
            project=ctx.project,
            scope=_scope(scope) or "",
            session_id=ctx.session_id,
            agent_id=ctx.agent_id,
            content=content,
            tags=_tags(tags),
            source="explicit",
            type="pattern_discovered",
            created_at=now,
        )
        await self.store.insert_memory(record)
        return record

    async def recall(
        self,
        ctx: MemoryContext,
        query: str,
        tags: list[str],
        scope: str | None,
        max_results: int = DEFAULT_RESULTS,
    ) -> list[MemoryHit]:
        if not query.strip():
            raise InvalidInput("query", "query: must not be empty")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInput("query", f"query: at most {MAX_QUERY_CHARS} characters")
        if not 1 <= max_results <= MAX_RESULTS:
            raise InvalidInput("max_results", f"max_results: must be between 1 and {MAX_RESULTS}")
        wanted = set(_tags(tags))
        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:MAX_QUERY_WORDS]
        limit = max_results * TAG_OVERFETCH if wanted else max_results
        hits = await self.store.search_memories(
            MemoryQuery(ctx.org_id, ctx.project, words, _scope(scope), limit)
        )
        return [h for h in hits if wanted <= set(h.memory.tags)][:max_results]

    async def forget(self, ctx: MemoryContext, memory_id: str) -> bool:
        return await self.store.delete_memory(ctx.org_id, ctx.project, memory_id)


def _tags(tags: list[str]) -> list[str]:
    if len(tags) > MAX_TAGS:
        raise InvalidInput("tags", f"tags: at most {MAX_TAGS}")
    for tag in tags:
        if not tag or len(tag) > MAX_TAG_CHARS:
            raise InvalidInput("tags", f"tags: each 1-{MAX_TAG_CHARS} characters")
    return list(dict.fromkeys(tags))


def _scope(scope: str | None) -> str | None:
    if scope is not None and len(scope) > MAX_SCOPE_CHARS:
        raise InvalidInput("scope", f"scope: at most {MAX_SCOPE_CHARS} characters")
    return scope or None
