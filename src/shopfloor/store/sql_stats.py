"""Totals of sessions and workers, grouped, for metrics and the console (SqlStore mixes it in).

Only the open sessions (queued, parked, live) and the active workers are counted, each through
its status index: those sets are as large as the work in hand, where the finished sessions and
the ended workers grow with the server's whole history, and on SQLite a statement holds the
event loop (and so every worker's request) for as long as it runs."""

from __future__ import annotations

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.db import Database
from shopfloor.store.records import LIVE_STATUSES, PARKED, PENDING, WORKER_ACTIVE
from shopfloor.store.stats_records import SessionCount, StatsScope, WorkerCount

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
