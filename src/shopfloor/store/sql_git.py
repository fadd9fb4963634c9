"""Persistence of repositories, git credential sources and batch work items (SqlStore mixes
it in)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.db import Database
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.git_records import (
    BATCH_LEASED,
    BATCH_QUEUED,
    BatchItemRecord,
    GitSourceRecord,
    ProjectDefaultsRecord,
    RepositoryRecord,
)


class GitSql:
    db: Database
    dialect: str

    # -- repositories --

    async def insert_repository(self, repo: RepositoryRecord) -> None:
        try:
            async with self.db.begin() as conn:
                await conn.execute(t.repositories.insert().values(dataclasses.asdict(repo)))
        except sa.exc.IntegrityError:
            raise DuplicateKey(repo.key) from None

    async def get_repository(self, repo_id: str) -> RepositoryRecord | None:
        rows = await self._select(t.repositories, t.repositories.c.id == repo_id)
        return RepositoryRecord(**rows[0]) if rows else None

    async def list_repositories(
        self, org_id: str, keys: Sequence[str] | None = None
    ) -> list[RepositoryRecord]:
        r = t.repositories
        where = [r.c.org_id == org_id]
        if keys is not None:
            where.append(r.c.key.in_(list(keys)))
        return [RepositoryRecord(**row) for row in await self._select(r, *where)]

    async def delete_repository(self, repo_id: str) -> bool:
        async with self.db.begin() as conn:
            done = await conn.execute(t.repositories.delete().where(t.repositories.c.id == repo_id))
        return done.rowcount > 0

    # -- credential sources --

    async def insert_git_source(self, source: GitSourceRecord) -> None:
        async with self.db.begin() as conn:
            if source.org_default:  # one default per organisation
                await conn.execute(
                    t.git_sources.update()
                    .where(t.git_sources.c.org_id == source.org_id)
                    .values(org_default=False)
                )
            await conn.execute(t.git_sources.insert().values(dataclasses.asdict(source)))

    async def get_git_source(self, source_id: str) -> GitSourceRecord | None:
        rows = await self._select(t.git_sources, t.git_sources.c.id == source_id)
        return GitSourceRecord(**rows[0]) if rows else None

    async def list_git_sources(self, org_id: str) -> list[GitSourceRecord]:
        rows = await self._select(t.git_sources, t.git_sources.c.org_id == org_id)
        return [GitSourceRecord(**row) for row in rows]

    async def delete_git_source(self, source_id: str) -> bool:
        """Delete it; repositories that named it fall back to their organisation's default."""
        g, r = t.git_sources, t.repositories
        async with self.db.begin() as conn:
            await conn.execute(r.update().where(r.c.source_id == source_id).values(source_id=None))
            done = await conn.execute(g.delete().where(g.c.id == source_id))
        return done.rowcount > 0

    async def record_git_source_error(self, source_id: str, error: str | None, at: int) -> None:
        g = t.git_sources
        async with self.db.begin() as conn:
            await conn.execute(
                g.update()
                .where(g.c.id == source_id)
                .values(last_error=None if error is None else error[:500], last_error_at=at)
            )

    # -- batch work --

    async def insert_batch_item(self, item: BatchItemRecord) -> None:
        async with self.db.begin() as conn:
            await conn.execute(t.batch_items.insert().values(dataclasses.asdict(item)))

    async def get_batch_item(self, item_id: str) -> BatchItemRecord | None:
        rows = await self._select(t.batch_items, t.batch_items.c.id == item_id)
        return BatchItemRecord(**rows[0]) if rows else None

    async def list_batch_items(
        self, org_id: str | None, status: str | None, limit: int
    ) -> list[BatchItemRecord]:
        b = t.batch_items
        where = []
        if org_id is not None:
            where.append(b.c.org_id == org_id)
        if status is not None:
            where.append(b.c.status == status)
        query = sa.select(b).where(*where).order_by(b.c.created_at.desc(), b.c.id).limit(limit)
        async with self.db.connect() as conn:
            return [BatchItemRecord(**r._mapping) for r in await conn.execute(query)]

    async def lease_batch_items(
        self,
        org_id: str,
        capabilities: Sequence[str],
        projects: Sequence[str] | None,
        worker_id: str,
        now: int,
        lease_until: int,
        limit: int,
    ) -> list[BatchItemRecord]:
        """Atomically lease up to `limit` items of the organisation needing one of
        `capabilities` (and, for a worker limited to `projects`, of no other project): queued
        ones, and leased ones whose lease ran out, oldest first. Each lease gets a new epoch,
        so the previous holder's result is refused."""
        b = t.batch_items
        due = sa.or_(
            b.c.status == BATCH_QUEUED,
            sa.and_(b.c.status == BATCH_LEASED, b.c.lease_expires_at < now),
        )
        where: list[sa.ColumnElement[bool]] = [
            b.c.org_id == org_id,
            b.c.capability.in_(list(capabilities)),
            due,
        ]
        if projects is not None:
            where.append(sa.or_(b.c.project.is_(None), b.c.project.in_(list(projects))))
        picking = sa.select(b.c.id).where(*where).order_by(b.c.created_at, b.c.id).limit(limit)
        if self.dialect == "postgresql":
            picking = picking.with_for_update(skip_locked=True)
        # A CTE, evaluated once: Postgres may run a LIMIT subquery inside IN (…) again for
        # each row it updates, which would lease more than `limit`.
        picked = picking.cte("picked")
        lease = (
            b.update()
            .where(b.c.id.in_(sa.select(picked.c.id)), due)
            .values(
                status=BATCH_LEASED,
                worker_id=worker_id,
                lease_epoch=b.c.lease_epoch + 1,
                lease_expires_at=lease_until,
                attempts=b.c.attempts + 1,
            )
            .returning(*b.c)
        )
        async with self.db.begin() as conn:
            rows = (await conn.execute(lease)).all()
        items = [BatchItemRecord(**r._mapping) for r in rows]
        return sorted(items, key=lambda i: (i.created_at, i.id))

    async def finish_batch_item(
        self,
        item_id: str,
        worker_id: str,
        epoch: int,
        now: int,
        status: str,
        result: dict[str, Any] | None,
    ) -> BatchItemRecord | None:
        """Record the end only while `worker_id` holds the item's live lease of `epoch`;
        None (nothing written) otherwise."""
        b = t.batch_items
        update = (
            b.update()
            .where(
                b.c.id == item_id,
                b.c.status == BATCH_LEASED,
                b.c.worker_id == worker_id,
                b.c.lease_epoch == epoch,
                b.c.lease_expires_at >= now,
            )
            .values(status=status, result=result, finished_at=now, lease_expires_at=None)
            .returning(*b.c)
        )
        async with self.db.begin() as conn:
            row = (await conn.execute(update)).first()
        return None if row is None else BatchItemRecord(**row._mapping)

    # -- a project's default work-item fields --

    async def put_project_defaults(self, record: ProjectDefaultsRecord) -> None:
        d = t.project_defaults
        where = (d.c.org_id == record.org_id, d.c.project == record.project)
        async with self.db.begin() as conn:
            if not record.fields:
                await conn.execute(d.delete().where(*where))
                return
            done = await conn.execute(
                d.update().where(*where).values(fields=record.fields, updated_at=record.updated_at)
            )
            if done.rowcount == 0:
                await conn.execute(d.insert().values(dataclasses.asdict(record)))

    async def get_project_defaults(self, org_id: str, project: str) -> ProjectDefaultsRecord | None:
        d = t.project_defaults
        query = sa.select(d).where(d.c.org_id == org_id, d.c.project == project)
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else ProjectDefaultsRecord(**row._mapping)

    async def _select(self, table: sa.Table, *where: sa.ColumnElement[bool]) -> list[Any]:
        query = sa.select(table).where(*where).order_by(table.c.created_at, table.c.id)
        async with self.db.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]
