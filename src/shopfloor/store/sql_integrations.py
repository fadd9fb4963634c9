"""Persistence of the integrations: webhook deliveries and secrets, and the audit log's hash
chain (SqlStore mixes it in)."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa

from shopfloor.store import audit_triggers
from shopfloor.store import schema as t
from shopfloor.store.db import Database, DbConnection, Prepared
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.integration_records import (
    DELIVERY_PENDING,
    AuditBacklog,
    AuditFact,
    AuditQuery,
    AuditRecord,
    TriggerRule,
    WebhookDelivery,
    WebhookSecretRecord,
)

GENESIS_HASH = "0" * 64
# Prepared statements reach the caller as the driver raised them (store/db.py).
_DRIVER_INTEGRITY: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    asyncpg.UniqueViolationError,
)
# How often an append retries after losing a race for the next sequence number (only a
# writer outside this server's own serialisation can make it lose: another SQLite process).
_APPEND_ATTEMPTS = 20
_TRIGGER_LOCK = 0x5F00A7  # advisory lock key: one process at a time sets the audit trigger


_a = t.audit_events
# Built once: an append is one per audited action, on the hot path of session creation.
_AUDIT_HEAD = Prepared(
    sa.select(_a.c.sequence_number, _a.c.entry_hash)
    .where(_a.c.org_id == sa.bindparam("b_org"))
    .order_by(_a.c.sequence_number.desc())
    .limit(1)
)
_AUDIT_INSERT = Prepared(
    _a.insert().values({c.name: sa.bindparam(c.name, type_=c.type) for c in _a.columns})
)
_AUDIT_LOCK = Prepared(
    sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("b_key", type_=sa.BigInteger)))
)


_AUDIT_TRY_LOCK = Prepared(
    sa.select(
        sa.func.pg_try_advisory_xact_lock(sa.bindparam("b_key", type_=sa.BigInteger)).label("got")
    )
)
_o = t.audit_outbox
_OUTBOX_ORGS = sa.select(_o.c.org_id).distinct()
_OUTBOX_WAITING = sa.select(sa.func.count()).select_from(
    sa.select(_o.c.id).limit(sa.bindparam("b_most", type_=sa.Integer)).subquery()
)
# Takes (deletes, returning them) the organisation's oldest facts: one statement, one
# index walk, instead of a read and a delete by a list of ids.
_OUTBOX_TAKE = Prepared(
    _o.delete()
    .where(
        _o.c.id.in_(
            sa.select(_o.c.id)
            .where(_o.c.org_id == sa.bindparam("b_org"))
            .order_by(_o.c.id)
            .limit(sa.bindparam("b_limit", type_=sa.Integer))
        )
    )
    .returning(*_o.c)
)
# The appender's optimistic path (peek_audit_facts, commit_audit_facts): read the oldest
# facts, then delete exactly those, each by id.
_OUTBOX_PEEK = Prepared(
    sa.select(*_o.c)
    .where(_o.c.org_id == sa.bindparam("b_org"))
    .order_by(_o.c.id)
    .limit(sa.bindparam("b_limit", type_=sa.Integer))
)
_OUTBOX_TAKE_IDS = _o.delete().where(_o.c.id.in_(sa.bindparam("b_ids", expanding=True)))


class _ChainMoved(Exception):
    """The chain's head or the outbox changed between a peek and its commit."""


_LOST_RACE: tuple[type[Exception], ...] = (sa.exc.IntegrityError, *_DRIVER_INTEGRITY)
_REFUSED: tuple[type[Exception], ...] = (_ChainMoved, *_LOST_RACE)


async def _next_link(conn: DbConnection, org_id: str) -> tuple[int, str]:
    """The organisation's chain's next sequence number and the hash its entry links to."""
    last = await conn.fetch(_AUDIT_HEAD, {"b_org": org_id})
    if not last:
        return 1, GENESIS_HASH
    return int(last[0]["sequence_number"]) + 1, str(last[0]["entry_hash"])


def _lock_key(org_id: str) -> int:
    """A signed 64-bit advisory lock key for an organisation's chain."""
    return int.from_bytes(
        hashlib.sha256(b"audit:" + org_id.encode()).digest()[:8], "big", signed=True
    )


class IntegrationsSql:
    db: Database
    dialect: str

    # -- webhook deliveries --

    async def insert_delivery(self, delivery: WebhookDelivery) -> WebhookDelivery | None:
        """Store a delivery; None if one with the same (org, provider, delivery id) exists."""
        try:
            async with self.db.begin() as conn:
                await conn.execute(
                    t.webhook_deliveries.insert().values(dataclasses.asdict(delivery))
                )
        except sa.exc.IntegrityError:
            return None
        return delivery

    async def find_delivery(
        self, org_id: str, provider: str, delivery_id: str
    ) -> WebhookDelivery | None:
        d = t.webhook_deliveries
        where = sa.and_(
            d.c.org_id == org_id, d.c.provider == provider, d.c.delivery_id == delivery_id
        )
        return await self._one_delivery(where)

    async def get_delivery(self, event_id: str) -> WebhookDelivery | None:
        return await self._one_delivery(t.webhook_deliveries.c.id == event_id)

    async def _one_delivery(self, where: sa.ColumnElement[bool]) -> WebhookDelivery | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(t.webhook_deliveries).where(where))).first()
        return None if row is None else WebhookDelivery(**row._mapping)

    async def lease_delivery(
        self, event_id: str, owner: str, now: int, expires_at: int
    ) -> WebhookDelivery | None:
        """Take a pending delivery whose lease is free or lapsed; None if another process
        holds it or it is done."""
        d = t.webhook_deliveries
        statement = (
            d.update()
            .where(
                d.c.id == event_id,
                d.c.status == DELIVERY_PENDING,
                sa.or_(d.c.lease_expires_at.is_(None), d.c.lease_expires_at <= now),
            )
            .values(lease_owner=owner, lease_expires_at=expires_at, attempts=d.c.attempts + 1)
            .returning(*d.c)
        )
        async with self.db.begin() as conn:
            row = (await conn.execute(statement)).first()
        return None if row is None else WebhookDelivery(**row._mapping)

    async def finish_delivery(
        self,
        event_id: str,
        owner: str,
        status: str,
        reason: str | None,
        result: dict[str, Any],
        now: int,
    ) -> bool:
        d = t.webhook_deliveries
        statement = (
            d.update()
            .where(d.c.id == event_id, d.c.lease_owner == owner, d.c.status == DELIVERY_PENDING)
            .values(
                status=status, reason=reason, result=result, processed_at=now, lease_expires_at=None
            )
        )
        async with self.db.begin() as conn:
            done = await conn.execute(statement)
        return done.rowcount > 0

    async def due_deliveries(self, now: int, limit: int = 100) -> list[str]:
        """Pending deliveries no live lease covers: never taken, or whose taker died."""
        d = t.webhook_deliveries
        query = (
            sa.select(d.c.id)
            .where(
                d.c.status == DELIVERY_PENDING,
                sa.or_(d.c.lease_expires_at.is_(None), d.c.lease_expires_at <= now),
            )
            .order_by(d.c.received_at, d.c.id)
            .limit(limit)
        )
        async with self.db.connect() as conn:
            return [r[0] for r in await conn.execute(query)]

    # -- webhook secrets --

    async def put_webhook_secret(self, record: WebhookSecretRecord) -> None:
        s = t.webhook_secrets
        async with self.db.begin() as conn:
            await conn.execute(
                s.delete().where(s.c.org_id == record.org_id, s.c.provider == record.provider)
            )
            await conn.execute(s.insert().values(dataclasses.asdict(record)))

    async def get_webhook_secret(self, org_id: str, provider: str) -> WebhookSecretRecord | None:
        s = t.webhook_secrets
        query = sa.select(s).where(s.c.org_id == org_id, s.c.provider == provider)
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else WebhookSecretRecord(**row._mapping)

    async def delete_webhook_secret(self, org_id: str, provider: str) -> bool:
        s = t.webhook_secrets
        async with self.db.begin() as conn:
            done = await conn.execute(
                s.delete().where(s.c.org_id == org_id, s.c.provider == provider)
            )
        return done.rowcount > 0

    # -- trigger rules --

    async def insert_trigger(self, rule: TriggerRule) -> None:
        async with self.db.begin() as conn:
            await conn.execute(t.webhook_triggers.insert().values(dataclasses.asdict(rule)))

    async def list_triggers(
        self, org_id: str, provider: str | None = None, event_type: str | None = None
    ) -> list[TriggerRule]:
        r = t.webhook_triggers
        query = sa.select(r).where(r.c.org_id == org_id).order_by(r.c.created_at, r.c.id)
        if provider is not None:
            query = query.where(r.c.provider == provider)
        if event_type is not None:
            query = query.where(r.c.event_type == event_type)
        async with self.db.connect() as conn:
            return [TriggerRule(**row._mapping) for row in await conn.execute(query)]

    async def delete_trigger(self, org_id: str, trigger_id: str) -> bool:
        r = t.webhook_triggers
        async with self.db.begin() as conn:
            done = await conn.execute(r.delete().where(r.c.org_id == org_id, r.c.id == trigger_id))
        return done.rowcount > 0

    # -- the audit log --

    async def append_audit(
        self, org_id: str, build: Callable[[int, str], AuditRecord]
    ) -> AuditRecord:
        """Append the entry `build(sequence, prev_hash)` makes to the organisation's chain,
        in one transaction with the read of the chain's head. On PostgreSQL an advisory lock
        per organisation makes concurrent appenders (of any process) take turns; the unique
        (org, sequence) constraint refuses a fork whatever happens, and the loser retries."""
        for _ in range(_APPEND_ATTEMPTS):
            try:
                async with self.db.begin() as conn:
                    if self.dialect == "postgresql":
                        await conn.fetch(_AUDIT_LOCK, {"b_key": _lock_key(org_id)})
                    record = build(*await _next_link(conn, org_id))
                    await conn.run(_AUDIT_INSERT, dataclasses.asdict(record))
                return record
            except sa.exc.IntegrityError:
                continue
            except _DRIVER_INTEGRITY:
                continue
        raise DuplicateKey(f"audit chain of {org_id}: no free sequence number")

    async def audit_backlog_orgs(self) -> list[str]:
        """The organisations with session claims or ends waiting in the audit outbox."""
        async with self.db.connect() as conn:
            return [str(r[0]) for r in await conn.execute(_OUTBOX_ORGS)]

    async def append_audit_facts(
        self,
        org_id: str,
        limit: int,
        build: Callable[[list[AuditFact], int, str], list[AuditRecord]],
        *,
        wait: bool = False,
    ) -> int:
        """Move up to `limit` of the organisation's outbox facts, oldest first, into its
        chain: in one transaction the facts are taken (deleted), `build(facts, next
        sequence, previous entry hash)` makes their entries (and may add entries of its own
        after them), and those are inserted in one multi-row insert after one read of the
        chain's head. Crash-safe and exactly once: a fact leaves the outbox only with its
        entry. Returns how many facts were taken.

        `wait=False` (the appender): with no facts waiting nothing is built; on PostgreSQL,
        while another appender holds the organisation's chain, returns 0 at once (that one
        is appending them). `wait=True` (an entry of the caller's own, a reader that wants
        every fact chained): waits its turn for the chain, and builds even with no facts."""
        for _ in range(_APPEND_ATTEMPTS if wait else 1):
            try:
                return await self._append_facts(org_id, limit, build, wait)
            except _LOST_RACE:
                continue
        if wait:
            raise DuplicateKey(f"audit chain of {org_id}: no free sequence number")
        return 0

    async def _append_facts(
        self,
        org_id: str,
        limit: int,
        build: Callable[[list[AuditFact], int, str], list[AuditRecord]],
        wait: bool,
    ) -> int:
        async with self.db.begin() as conn:
            if self.dialect == "postgresql":
                lock = _AUDIT_LOCK if wait else _AUDIT_TRY_LOCK
                got = await conn.fetch(lock, {"b_key": _lock_key(org_id)})
                if not wait and not got[0]["got"]:
                    return 0
            rows = await conn.fetch(_OUTBOX_TAKE, {"b_org": org_id, "b_limit": limit})
            if not rows and not wait:
                return 0
            # RETURNING promises no order: the chain takes them in the outbox's order.
            facts = sorted((AuditFact(**r) for r in rows), key=lambda f: f.id)
            records = build(facts, *await _next_link(conn, org_id))
            if records:
                # vars(), not dataclasses.asdict: no deep copy of flat records.
                await conn.run(_AUDIT_INSERT, [vars(r) for r in records])
        return len(facts)

    async def peek_audit_facts(self, org_id: str, limit: int) -> tuple[list[AuditFact], int, str]:
        """Up to `limit` of the organisation's outbox facts, oldest first, and the next
        sequence number and previous entry hash of its chain, read without taking
        anything: the first half of an append whose entries are made outside any
        transaction (commit_audit_facts is the second)."""
        async with self.db.connect() as conn:
            rows = await conn.fetch(_OUTBOX_PEEK, {"b_org": org_id, "b_limit": limit})
            if not rows:
                return [], 0, GENESIS_HASH
            sequence, prev_hash = await _next_link(conn, org_id)
        return [AuditFact(**r) for r in rows], sequence, prev_hash

    async def commit_audit_facts(
        self, org_id: str, facts: list[AuditFact], records: list[AuditRecord]
    ) -> bool:
        """In one transaction, take `facts` out of the outbox and add `records` (their
        entries, made from a peek) to the chain, if the chain's head is still the entry
        the first record links to and every fact still waits. Otherwise (another append
        came first) change nothing and return False."""
        if not records:
            return False
        try:
            async with self.db.begin() as conn:
                if self.dialect == "postgresql":
                    await conn.fetch(_AUDIT_LOCK, {"b_key": _lock_key(org_id)})
                link = await _next_link(conn, org_id)
                if link != (records[0].sequence_number, records[0].prev_hash):
                    raise _ChainMoved
                taken = await conn.execute(_OUTBOX_TAKE_IDS, {"b_ids": [f.id for f in facts]})
                if taken.rowcount != len(facts):
                    raise _ChainMoved
                await conn.run(_AUDIT_INSERT, [vars(r) for r in records])
        except _REFUSED:
            return False
        return True

    async def audit_waiting(self, at_most: int) -> int:
        """How many facts wait in the audit outbox, counted up to `at_most`."""
        async with self.db.connect() as conn:
            return int(await conn.scalar(_OUTBOX_WAITING, {"b_most": at_most}))

    async def audit_backlog(self) -> list[AuditBacklog]:
        """Per organisation, the facts waiting in the audit outbox and the oldest one's time."""
        query = sa.select(
            _o.c.org_id, sa.func.count().label("waiting"), sa.func.min(_o.c.at).label("oldest_at")
        ).group_by(_o.c.org_id)
        async with self.db.connect() as conn:
            return [AuditBacklog(**r._mapping) for r in await conn.execute(query)]

    async def set_session_audit(self, enabled: bool) -> None:
        """Create or drop the trigger that writes session claims and ends to the audit
        outbox (store/audit_triggers.py), unless it already is as asked."""
        async with self.db.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_TRIGGER_LOCK})"))
            found = (await conn.execute(sa.text(audit_triggers.exists_query(self.dialect)))).first()
            if (found is not None) == enabled:
                return
            make = audit_triggers.create_statements if enabled else audit_triggers.drop_statements
            for statement in make(self.dialect):
                await conn.execute(sa.text(statement))

    async def audit_entries(self, query: AuditQuery) -> list[AuditRecord]:
        a = t.audit_events
        where: list[sa.ColumnElement[bool]] = [a.c.org_id == query.org_id]
        if query.after_sequence is not None:
            where.append(a.c.sequence_number > query.after_sequence)
        if query.event_type is not None:
            where.append(a.c.event_type == query.event_type)
        if query.entity_type is not None:
            where.append(a.c.entity_type == query.entity_type)
        if query.entity_id is not None:
            where.append(a.c.entity_id == query.entity_id)
        if query.session_id is not None:
            where.append(sa.and_(a.c.entity_type == "session", a.c.entity_id == query.session_id))
        if query.since is not None:
            where.append(a.c.occurred_at >= query.since)
        if query.until is not None:
            where.append(a.c.occurred_at <= query.until)
        statement = (
            sa.select(a)
            .where(*where)
            .order_by(a.c.sequence_number)
            .offset(query.offset)
            .limit(query.limit)
        )
        async with self.db.connect() as conn:
            return [AuditRecord(**r._mapping) for r in await conn.execute(statement)]
