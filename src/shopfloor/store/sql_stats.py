"""Totals of sessions and workers, grouped, for metrics and the console (SqlStore mixes it in).

Only the open sessions (queued, parked, live) and the active workers are counted, each through
its status index: those sets are as large as the work in hand, where the finished sessions and
the ended workers grow with the server's whole history, and on SQLite a statement holds the
event loop (and so every worker's request) for as long as it runs."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect

from shopfloor.store import schema as t
from shopfloor.store.db import Database
from shopfloor.store.records import LIVE_STATUSES, PARKED, PENDING, WORKER_ACTIVE
from shopfloor.store.stats_records import QueueMinute, SessionCount, StatsScope, WorkerCount

OPEN_STATUSES = (PENDING, PARKED, *LIVE_STATUSES)


class StatsSql:
    db: Database

    async def session_counts(self, scope: StatsScope) -> list[SessionCount]:
        s = t.sessions
        query = sa.select(
            s.c.org_id,
            s.c.queue,
            s.c.project,
            s.c.status,
            sa.func.count().label("n"),
            sa.func.min(s.c.queued_at).label("oldest"),
        ).where(s.c.status.in_(OPEN_STATUSES))
        query = query.group_by(s.c.org_id, s.c.queue, s.c.project, s.c.status)
        if scope.org_id is not None:
            query = query.where(s.c.org_id == scope.org_id)
        if scope.projects is not None:
            query = query.where(s.c.project.in_(sorted(scope.projects)))
        async with self.db.connect() as conn:
            rows = await conn.execute(query)
            return [
                SessionCount(
                    org_id=r.org_id,
                    queue=r.queue,
                    project=r.project,
                    status=r.status,
                    count=int(r.n),
                    oldest_queued_at=None if r.oldest is None else int(r.oldest),
                )
                for r in rows
            ]

    async def worker_counts(self, org_id: str | None) -> list[WorkerCount]:
        w = t.workers
        query = sa.select(
            w.c.org_id,
            w.c.protocol,
            w.c.status,
            sa.func.count().label("n"),
            sa.func.coalesce(sa.func.sum(w.c.capacity), 0).label("capacity"),
            sa.func.coalesce(sa.func.sum(w.c.active_count), 0).label("active"),
        ).where(w.c.status == WORKER_ACTIVE)
        query = query.group_by(w.c.org_id, w.c.protocol, w.c.status)
        if org_id is not None:
            query = query.where(w.c.org_id == org_id)
        async with self.db.connect() as conn:
            rows = await conn.execute(query)
            return [
                WorkerCount(
                    org_id=r.org_id,
                    protocol=r.protocol,
                    status=r.status,
                    count=int(r.n),
                    capacity=int(r.capacity),
                    active=int(r.active),
                )
                for r in rows
            ]

    async def add_queue_minutes(self, minutes: Sequence[QueueMinute], keep_after: int) -> None:
        """Add these counts to the stored ones (another process may have written the same
        minute), and forget the minutes before `keep_after`: one transaction."""
        q = t.queue_minutes
        insert = pg.insert(q) if self.db.dialect.name == "postgresql" else sqlite_dialect.insert(q)
        upsert = insert.on_conflict_do_update(
            index_elements=["minute", "org_id", "queue", "project"],
            set_={
                "claims": q.c.claims + insert.excluded.claims,
                "wait_ms_sum": q.c.wait_ms_sum + insert.excluded.wait_ms_sum,
                "wait_ms_max": sa.func.greatest(q.c.wait_ms_max, insert.excluded.wait_ms_max)
                if self.db.dialect.name == "postgresql"
                else sa.func.max(q.c.wait_ms_max, insert.excluded.wait_ms_max),
            },
        )
        rows = [
            {
                "minute": m.minute,
                "org_id": m.org_id,
                "queue": m.queue,
                "project": m.project,
                "claims": m.claims,
                "wait_ms_sum": m.wait_ms_sum,
                "wait_ms_max": m.wait_ms_max,
            }
            for m in sorted(minutes, key=lambda m: (m.minute, m.org_id, m.queue, m.project))
        ]
        async with self.db.begin() as conn:
            if rows:
                await conn.execute(upsert, rows)
            await conn.execute(q.delete().where(q.c.minute < keep_after))

    async def queue_minutes(self, scope: StatsScope, since: int) -> list[QueueMinute]:
        """The stored minutes from `since` on (by the key's leading column), of the scope."""
        q = t.queue_minutes
        query = sa.select(q).where(q.c.minute >= since)
        if scope.org_id is not None:
            query = query.where(q.c.org_id == scope.org_id)
        if scope.projects is not None:
            query = query.where(q.c.project.in_(sorted(scope.projects)))
        async with self.db.connect() as conn:
            rows = await conn.execute(query.order_by(q.c.minute))
            return [QueueMinute(**r._mapping) for r in rows]
