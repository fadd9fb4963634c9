"""Persistence of the provider router and the daemon mutations (SqlStore mixes it in)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.db import Database
from shopfloor.store.routing_records import (
    MUTATION_CANCELLED,
    MUTATION_DELIVERED,
    MUTATION_PENDING,
    Mutation,
    Observation,
    Posterior,
)


class RoutingSql:
    db: Database

    async def record_observation(
        self, observation: Observation, alpha_step: float, beta_step: float
    ) -> Posterior:
        """Store the observation and move its arm's posterior by the steps, in one
        transaction (the arm starts at Beta(1, 1)); returns the arm as it is now."""
        p, o = t.routing_posteriors, t.routing_observations
        arm = (
            p.c.org_id == observation.org_id,
            p.c.provider == observation.provider,
            p.c.work_type == observation.work_type,
        )
        n = p.c.total_observations
        cost = observation.cost_usd or 0.0
        async with self.db.begin() as conn:
            await conn.execute(o.insert().values(dataclasses.asdict(observation)))
            for _ in range(2):  # an arm inserted meanwhile by another call: update it
                moved = await conn.execute(
                    p.update()
                    .where(*arm)
                    .values(
                        alpha=p.c.alpha + alpha_step,
                        beta=p.c.beta + beta_step,
                        avg_reward=(p.c.avg_reward * n + observation.reward) / (n + 1),
                        avg_cost_usd=(p.c.avg_cost_usd * n + cost) / (n + 1),
                        total_observations=n + 1,
                        updated_at=observation.at,
                    )
                )
                if moved.rowcount:
                    break
                first = Posterior(
                    org_id=observation.org_id,
                    provider=observation.provider,
                    work_type=observation.work_type,
                    alpha=1.0 + alpha_step,
                    beta=1.0 + beta_step,
                    total_observations=1,
                    avg_reward=observation.reward,
                    avg_cost_usd=cost,
                    updated_at=observation.at,
                )
                try:
                    async with conn.begin_nested():
                        await conn.execute(p.insert().values(dataclasses.asdict(first)))
                    break
                except sa.exc.IntegrityError:
                    continue
            row = (await conn.execute(sa.select(p).where(*arm))).one()
        return Posterior(**row._mapping)

    async def posteriors(
        self, org_id: str | None, work_type: str | None = None, providers: Sequence[str] = ()
    ) -> list[Posterior]:
        p = t.routing_posteriors
        query = sa.select(p).order_by(p.c.work_type, p.c.provider)
        if org_id is not None:
            query = query.where(p.c.org_id == org_id)
        if work_type is not None:
            query = query.where(p.c.work_type == work_type)
        if providers:
            query = query.where(p.c.provider.in_(list(providers)))
        async with self.db.connect() as conn:
            return [Posterior(**r._mapping) for r in await conn.execute(query)]

    async def observations(
        self,
        org_id: str | None,
        *,
        since: int | None = None,
        until: int | None = None,
        before_id: str | None = None,
        limit: int = 50,
    ) -> list[Observation]:
        """Newest first."""
        o = t.routing_observations
        query = sa.select(o).order_by(o.c.id.desc()).limit(limit)
        if org_id is not None:
            query = query.where(o.c.org_id == org_id)
        if since is not None:
            query = query.where(o.c.at >= since)
        if until is not None:
            query = query.where(o.c.at <= until)
        if before_id is not None:
            query = query.where(o.c.id < before_id)
        async with self.db.connect() as conn:
            return [Observation(**r._mapping) for r in await conn.execute(query)]

    # -- daemon mutations --

    async def insert_mutation(self, mutation: Mutation) -> None:
        async with self.db.begin() as conn:
            await conn.execute(t.daemon_mutations.insert().values(dataclasses.asdict(mutation)))

    async def get_mutation(self, mutation_id: str) -> Mutation | None:
        m = t.daemon_mutations
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(m).where(m.c.id == mutation_id))).first()
        return None if row is None else Mutation(**row._mapping)

    async def list_mutations(self, worker_id: str, limit: int) -> list[Mutation]:
        """Newest first."""
        m = t.daemon_mutations
        query = sa.select(m).where(m.c.worker_id == worker_id).order_by(m.c.id.desc())
        async with self.db.connect() as conn:
            return [Mutation(**r._mapping) for r in await conn.execute(query.limit(limit))]

    async def hosts_with_pending_mutations(self) -> set[str]:
        m = t.daemon_mutations
        query = sa.select(m.c.worker_id).where(m.c.status == MUTATION_PENDING).distinct()
        async with self.db.connect() as conn:
            return {r.worker_id for r in await conn.execute(query)}

    async def cancel_mutation(self, mutation_id: str, now: int) -> bool:
        """Cancel a mutation that is still pending; False if it is not (any more)."""
        m = t.daemon_mutations
        async with self.db.begin() as conn:
            result = await conn.execute(
                m.update()
                .where(m.c.id == mutation_id, m.c.status == MUTATION_PENDING)
                .values(status=MUTATION_CANCELLED, cancelled_at=now)
            )
        return result.rowcount > 0

    async def deliver_mutations(self, worker_id: str, now: int) -> list[Mutation]:
        """Stamp the host's pending mutations delivered and return them, oldest first: one
        statement, so two heartbeats at once never both deliver one."""
        m = t.daemon_mutations
        async with self.db.begin() as conn:
            rows = await conn.execute(
                m.update()
                .where(m.c.worker_id == worker_id, m.c.status == MUTATION_PENDING)
                .values(status=MUTATION_DELIVERED, delivered_at=now)
                .returning(*m.c)
            )
            found = [Mutation(**r._mapping) for r in rows]
        return sorted(found, key=lambda x: x.id)
