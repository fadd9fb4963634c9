"""Persistence of the A2A registry (SqlStore mixes it in): an organisation's remote agents and
its dispatches. Every read and write names the organisation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.a2a_records import A2aAgentRecord, A2aDispatchRecord, DispatchFilter
from shopfloor.store.db import Database
from shopfloor.store.errors import DuplicateKey


class A2aSql:
    db: Database

    async def insert_a2a_agent(self, agent: A2aAgentRecord) -> None:
        try:
            async with self.db.begin() as conn:
                await conn.execute(t.a2a_agents.insert().values(dataclasses.asdict(agent)))
        except sa.exc.IntegrityError:
            raise DuplicateKey(agent.url) from None

    async def get_a2a_agent(self, org_id: str, agent_id: str) -> A2aAgentRecord | None:
        a = t.a2a_agents
        query = sa.select(a).where(a.c.id == agent_id, a.c.org_id == org_id)
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else A2aAgentRecord(**row._mapping)

    async def list_a2a_agents(self, org_id: str) -> list[A2aAgentRecord]:
        a = t.a2a_agents
        query = sa.select(a).where(a.c.org_id == org_id).order_by(a.c.created_at, a.c.id)
        async with self.db.connect() as conn:
            return [A2aAgentRecord(**r._mapping) for r in await conn.execute(query)]

    async def update_a2a_agent(
        self, org_id: str, agent_id: str, changes: Mapping[str, Any]
    ) -> A2aAgentRecord | None:
        a = t.a2a_agents
        async with self.db.begin() as conn:
            await conn.execute(
                a.update().where(a.c.id == agent_id, a.c.org_id == org_id).values(dict(changes))
            )
        return await self.get_a2a_agent(org_id, agent_id)

    async def delete_a2a_agent(self, org_id: str, agent_id: str) -> bool:
        a = t.a2a_agents
        async with self.db.begin() as conn:
            result = await conn.execute(a.delete().where(a.c.id == agent_id, a.c.org_id == org_id))
        return bool(result.rowcount)

    async def insert_a2a_dispatch(self, dispatch: A2aDispatchRecord) -> None:
        async with self.db.begin() as conn:
            await conn.execute(t.a2a_dispatches.insert().values(dataclasses.asdict(dispatch)))

    async def update_a2a_dispatch(self, dispatch_id: str, changes: Mapping[str, Any]) -> None:
        d = t.a2a_dispatches
        async with self.db.begin() as conn:
            await conn.execute(d.update().where(d.c.id == dispatch_id).values(dict(changes)))

    async def list_a2a_dispatches(self, flt: DispatchFilter) -> list[A2aDispatchRecord]:
        d = t.a2a_dispatches
        query = sa.select(d).where(d.c.org_id == flt.org_id)
        if flt.agent_id is not None:
            query = query.where(d.c.agent_id == flt.agent_id)
        if flt.status is not None:
            query = query.where(d.c.status == flt.status)
        if flt.since is not None:
            query = query.where(d.c.dispatched_at >= flt.since)
        if flt.until is not None:
            query = query.where(d.c.dispatched_at <= flt.until)
        if flt.before_id is not None:
            query = query.where(d.c.id < flt.before_id)
        query = query.order_by(d.c.id.desc()).limit(flt.limit)
        async with self.db.connect() as conn:
            return [A2aDispatchRecord(**r._mapping) for r in await conn.execute(query)]
