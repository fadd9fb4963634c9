"""Persistence of the tenancy: organisations, API keys and M2M clients (SqlStore mixes it in)."""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.db import Database
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.tenancy_records import ApiKeyRecord, M2MClientRecord, OrgRecord


class TenancySql:
    db: Database

    # -- organisations --

    async def insert_org(self, org: OrgRecord) -> None:
        try:
            async with self.db.begin() as conn:
                await conn.execute(t.orgs.insert().values(dataclasses.asdict(org)))
        except sa.exc.IntegrityError:
            raise DuplicateKey(org.slug) from None

    async def get_org(self, id_or_slug: str) -> OrgRecord | None:
        o = t.orgs
        query = sa.select(o).where(sa.or_(o.c.id == id_or_slug, o.c.slug == id_or_slug))
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else OrgRecord(**row._mapping)

    async def list_orgs(self) -> list[OrgRecord]:
        async with self.db.connect() as conn:
            rows = await conn.execute(sa.select(t.orgs).order_by(t.orgs.c.slug))
            return [OrgRecord(**r._mapping) for r in rows]

    # -- API keys --

    async def insert_api_key(self, key: ApiKeyRecord) -> None:
        async with self.db.begin() as conn:
            await conn.execute(t.api_keys.insert().values(dataclasses.asdict(key)))

    async def find_api_key(self, token_hash: str) -> ApiKeyRecord | None:
        return await self._one_key(t.api_keys.c.token_hash == token_hash)

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        return await self._one_key(t.api_keys.c.id == key_id)

    async def _one_key(self, where: sa.ColumnElement[bool]) -> ApiKeyRecord | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(t.api_keys).where(where))).first()
        return None if row is None else ApiKeyRecord(**row._mapping)

    async def list_api_keys(
        self, org_id: str | None = None, key_type: str | None = None
    ) -> list[ApiKeyRecord]:
        k = t.api_keys
        query = sa.select(k).order_by(k.c.id)
        if org_id is not None:
            query = query.where(k.c.org_id == org_id)
        if key_type is not None:
            query = query.where(k.c.key_type == key_type)
        async with self.db.connect() as conn:
            return [ApiKeyRecord(**r._mapping) for r in await conn.execute(query)]

    async def revoke_api_key(self, key_id: str, now: int) -> bool:
        k = t.api_keys
        return await self._revoke(k, k.c.id == key_id, k.c.revoked_at, now)

    # -- M2M clients --

    async def insert_m2m_client(self, client: M2MClientRecord) -> None:
        async with self.db.begin() as conn:
            await conn.execute(t.m2m_clients.insert().values(dataclasses.asdict(client)))

    async def get_m2m_client(self, client_id: str) -> M2MClientRecord | None:
        c = t.m2m_clients
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(c).where(c.c.id == client_id))).first()
        return None if row is None else M2MClientRecord(**row._mapping)

    async def list_m2m_clients(self, org_id: str | None = None) -> list[M2MClientRecord]:
        c = t.m2m_clients
        query = sa.select(c).order_by(c.c.id)
        if org_id is not None:
            query = query.where(c.c.org_id == org_id)
        async with self.db.connect() as conn:
            return [M2MClientRecord(**r._mapping) for r in await conn.execute(query)]

    async def revoke_m2m_client(self, client_id: str, now: int) -> bool:
        c = t.m2m_clients
        return await self._revoke(c, c.c.id == client_id, c.c.revoked_at, now)

    async def revoked_credential_ids(self) -> set[str]:
        """The ids of every revoked key and M2M client."""
        k, c = t.api_keys, t.m2m_clients
        query = sa.union(
            sa.select(k.c.id).where(k.c.revoked_at.is_not(None)),
            sa.select(c.c.id).where(c.c.revoked_at.is_not(None)),
        )
        async with self.db.connect() as conn:
            return {r[0] for r in await conn.execute(query)}

    async def _revoke(
        self, table: sa.Table, which: sa.ColumnElement[bool], column: Any, now: int
    ) -> bool:
        async with self.db.begin() as conn:
            result = await conn.execute(
                table.update().where(which, column.is_(None)).values(revoked_at=now)
            )
        return result.rowcount > 0
