"""Aggregates the public Sessions API reads (SqlStore mixes it in)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.db import Database
from shopfloor.store.records import (
    COMPLETED,
    LIVE_STATUSES,
    PENDING,
    TERMINAL_STATUSES,
    SessionRecord,
    SessionStats,
)


class PublicSql:
    db: Database

    async def session_stats(
        self, org_id: str | None, projects: frozenset[str] | None, since: int
    ) -> SessionStats:
        s = t.sessions

        def count(*where: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
            return sa.func.count().filter(*where)

        def cost(*where: sa.ColumnElement[bool]) -> sa.ColumnElement[float]:
            total = sa.func.sum(s.c.total_cost_usd)
            return sa.func.coalesce(total.filter(*where) if where else total, 0.0)

        query = sa.select(
            count(s.c.status == PENDING),
            count(s.c.status.in_(LIVE_STATUSES)),
            count(s.c.created_at >= since),
            count(s.c.status == COMPLETED, sa.func.coalesce(s.c.ended_at, s.c.updated_at) >= since),
            cost(s.c.created_at >= since),
            cost(),
        )
        if org_id is not None:
            query = query.where(s.c.org_id == org_id)
        if projects is not None:
            query = query.where(s.c.project.in_(sorted(projects)))
        async with self.db.connect() as conn:
            row: tuple[Any, ...] = tuple((await conn.execute(query)).one())
        return SessionStats(
            queued=int(row[0]),
            working=int(row[1]),
            created_since=int(row[2]),
            completed_since=int(row[3]),
            cost_since=float(row[4]),
            cost_all_time=float(row[5]),
        )

    async def ended_sessions(
        self, org_id: str | None, projects: frozenset[str] | None, since: int, limit: int
    ) -> list[SessionRecord]:
        """Sessions created since `since` that have ended, newest first (at most `limit`)."""
        s = t.sessions
        query = (
            sa.select(s)
            .where(s.c.created_at >= since, s.c.status.in_(TERMINAL_STATUSES))
            .order_by(s.c.created_at.desc())
            .limit(limit)
        )
        if org_id is not None:
            query = query.where(s.c.org_id == org_id)
        if projects is not None:
            query = query.where(s.c.project.in_(sorted(projects)))
        async with self.db.connect() as conn:
            return [SessionRecord.from_row(r._mapping) for r in await conn.execute(query)]
