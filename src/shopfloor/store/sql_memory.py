"""Persistence of agent memory with each database's own ranked full-text search (SqlStore
mixes it in): SQLite's FTS5 table memories_fts ranked by bm25, PostgreSQL's generated
tsvector column ranked by ts_rank. Every statement is bounded to one organisation and
project, so no query can reach another tenant's memory."""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.db import Database
from shopfloor.store.memory_records import MemoryHit, MemoryQuery, MemoryRecord

_FTS = sa.table("memories_fts", sa.column("memory_id"))
_POSTGRES_SEARCH: sa.ColumnElement[Any] = sa.literal_column("memories.search")


class MemorySql:
    db: Database
    dialect: str

    async def insert_memory(self, memory: MemoryRecord) -> None:
        async with self.db.begin() as conn:
            await conn.execute(t.memories.insert().values(dataclasses.asdict(memory)))
            if self.dialect != "postgresql":
                await conn.execute(
                    sa.text("INSERT INTO memories_fts (memory_id, content) VALUES (:id, :content)"),
                    {"id": memory.id, "content": memory.content},
                )

    async def search_memories(self, query: MemoryQuery) -> list[MemoryHit]:
        if not query.words:
            return []
        m = t.memories
        if self.dialect == "postgresql":
            tsquery = sa.func.to_tsquery("english", " | ".join(query.words))
            rank: sa.ColumnElement[Any] = sa.func.ts_rank(_POSTGRES_SEARCH, tsquery)
            select = sa.select(m, rank.label("score")).where(_POSTGRES_SEARCH.op("@@")(tsquery))
        else:
            # bm25() is lower for a better match; the words are \w+ only, quoted as phrases.
            match = " OR ".join(f'"{w}"' for w in query.words)
            rank = -sa.func.bm25(sa.literal_column("memories_fts"))
            select = (
                sa.select(m, rank.label("score"))
                .select_from(m.join(_FTS, _FTS.c.memory_id == m.c.id))
                .where(sa.text("memories_fts MATCH :match").bindparams(match=match))
            )
        select = select.where(m.c.org_id == query.org_id, m.c.project == query.project)
        if query.scope is not None:
            select = select.where(m.c.scope == query.scope)
        select = select.order_by(sa.desc("score"), m.c.created_at.desc()).limit(query.limit)
        async with self.db.connect() as conn:
            rows = (await conn.execute(select)).mappings().all()
        return [
            MemoryHit(MemoryRecord(**{k: v for k, v in r.items() if k != "score"}), r["score"])
            for r in rows
        ]

    async def delete_memory(self, org_id: str, project: str, memory_id: str) -> bool:
        m = t.memories
        async with self.db.begin() as conn:
            result = await conn.execute(
                m.delete().where(m.c.id == memory_id, m.c.org_id == org_id, m.c.project == project)
            )
            if result.rowcount and self.dialect != "postgresql":
                await conn.execute(
                    sa.text("DELETE FROM memories_fts WHERE memory_id = :id"), {"id": memory_id}
                )
        return bool(result.rowcount)
