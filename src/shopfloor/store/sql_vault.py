"""Persistence of the credential vault's encrypted rows (SqlStore mixes it in)."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.db import Database
from shopfloor.store.tenancy_records import ALL, CredentialRecord


class VaultSql:
    db: Database

    async def put_credential(self, record: CredentialRecord) -> CredentialRecord:
        """Insert, or replace the value (and updated_at) of the credential with the same
        organisation, project, environment and name; returns the stored row."""
        c = t.org_credentials
        same = (
            c.c.org_id == record.org_id,
            c.c.project == record.project,
            c.c.env_name == record.env_name,
            c.c.name == record.name,
        )
        async with self.db.begin() as conn:
            updated = await conn.execute(
                c.update()
                .where(*same)
                .values(ciphertext=record.ciphertext, updated_at=record.updated_at)
            )
            if updated.rowcount == 0:
                try:
                    async with conn.begin_nested():
                        await conn.execute(c.insert().values(dataclasses.asdict(record)))
                except sa.exc.IntegrityError:  # inserted meanwhile: the newer value wins
                    await conn.execute(
                        c.update()
                        .where(*same)
                        .values(ciphertext=record.ciphertext, updated_at=record.updated_at)
                    )
            row = (await conn.execute(sa.select(c).where(*same))).one()
        return CredentialRecord(**row._mapping)

    async def get_credential(self, credential_id: str) -> CredentialRecord | None:
        c = t.org_credentials
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(c).where(c.c.id == credential_id))).first()
        return None if row is None else CredentialRecord(**row._mapping)

    async def list_credentials(
        self, org_id: str | None, project: str | None = None, env_name: str | None = None
    ) -> list[CredentialRecord]:
        """The organisation's credentials (every one's for None). With a project (an
        environment), those that apply to it: its own and the organisation-wide ones."""
        c = t.org_credentials
        query = sa.select(c).order_by(c.c.project, c.c.env_name, c.c.name)
        if org_id is not None:
            query = query.where(c.c.org_id == org_id)
        if project is not None:
            query = query.where(c.c.project.in_([ALL, project]))
        if env_name is not None:
            query = query.where(c.c.env_name.in_([ALL, env_name]))
        async with self.db.connect() as conn:
            return [CredentialRecord(**r._mapping) for r in await conn.execute(query)]

    async def delete_credential(self, credential_id: str) -> bool:
        c = t.org_credentials
        async with self.db.begin() as conn:
            result = await conn.execute(c.delete().where(c.c.id == credential_id))
        return result.rowcount > 0
