"""The SQL store: one implementation over SQLAlchemy Core for SQLite (pysqlite, statements run
on the event loop; see db.py) and PostgreSQL (asyncpg). Dialect differences are confined to
engine setup and the claim query."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, make_url

from shopfloor.store import schema as t
from shopfloor.store.db import (
    AsyncEngineDatabase,
    Database,
    DbConnection,
    LoopSqliteDatabase,
    Prepared,
    async_engine,
)
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.observers import StoreObservers
from shopfloor.store.records import (
    CLAIMED,
    LIVE_STATUSES,
    PENDING,
    PROJECT_ENVIRONMENT,
    WORKER_ACTIVE,
    Delivery,
    Expect,
    InboxMessage,
    ProjectRecord,
    QueueStats,
    SessionEvent,
    SessionFilter,
    SessionRecord,
    WorkerPoll,
    WorkerRecord,
    session_row,
)
from shopfloor.store.sql_a2a import A2aSql
from shopfloor.store.sql_channel import ChannelSql, has_unacked_inbox, unacked_inbox
from shopfloor.store.sql_common import (
    EVENT_COLUMNS,
    INSERT_EVENT,
    OUTBOX_INSERT,
    ends_session,
    event_values,
    fenced_update,
    in_constants,
)
from shopfloor.store.sql_conversations import ConversationsSql
from shopfloor.store.sql_git import GitSql
from shopfloor.store.sql_integrations import IntegrationsSql
from shopfloor.store.sql_managed import ManagedSql
from shopfloor.store.sql_memory import MemorySql
from shopfloor.store.sql_public import PublicSql
from shopfloor.store.sql_routing import RoutingSql
from shopfloor.store.sql_runs import RunsSql
from shopfloor.store.sql_stats import StatsSql
from shopfloor.store.sql_tenancy import TenancySql
from shopfloor.store.sql_vault import VaultSql
from shopfloor.store.stats_records import WorkerPage

_MIGRATIONS = str(__import__("pathlib").Path(__file__).parent / "migrations")
_MIGRATION_LOCK_ID = 0x5F00F1  # advisory lock key: one migrator at a time on Postgres
# The claim statement's `status = 'pending'`, inlined so that it matches ix_sessions_claimable's
# predicate in every plan (see claim_statement).
_PENDING_LITERAL: sa.ColumnClause[str] = sa.literal_column(f"'{PENDING}'", sa.String)

# Hot-path statements are built once, with bound parameters (`b_*`), not per call: building
# and cache-keying a statement costs more than SQLite takes to run it.
_s, _w = t.sessions, t.workers
_GET_SESSION = Prepared(sa.select(_s).where(_s.c.id == sa.bindparam("b_id")))
_GET_WORKER = Prepared(sa.select(_w).where(_w.c.id == sa.bindparam("b_id")))
_GET_PROJECT = Prepared(sa.select(t.projects).where(t.projects.c.id == sa.bindparam("b_id")))
_LIVE_COUNT = (
    sa.select(sa.func.count())
    .select_from(_s)
    .where(_s.c.worker_id == _w.c.id, in_constants(_s.c.status, LIVE_STATUSES))
    .scalar_subquery()
)
# A poll's first read: can the worker take work, and has it messages waiting (an empty poll
# mostly has none, and then skips the inbox query).
_WORKER_SLOTS = sa.select(
    _w.c.status,
    _w.c.capacity,
    _w.c.projects,
    _LIVE_COUNT.label("live"),
    sa.exists(unacked_inbox(_w.c.id)).label("inbox"),
).where(_w.c.id == sa.bindparam("b_worker"))
_READ_WORKER_SLOTS = Prepared(_WORKER_SLOTS)


class _Unchanged(Exception):
    """A fenced update matched no row: roll back what the transaction wrote before it."""


def _bump_claim_seq() -> sa.Update:
    """Count a claiming poll on `b_worker`'s row (see pg_poll_statement)."""
    return (
        _w.update().where(_w.c.id == sa.bindparam("b_worker")).values(claim_seq=_w.c.claim_seq + 1)
    )


# The Postgres poll's lock on the worker row when it cannot claim in one statement.
_BUMP_CLAIM_SEQ = Prepared(_bump_claim_seq())


@functools.lru_cache(maxsize=32)
def claim_statement(dialect: str, limit: int, with_projects: bool) -> Prepared:
    """The single statement that claims the head of a queue: up to `limit` pending sessions
    of `b_queue` (of the projects `b_projects`, when `with_projects`) for `b_worker`, at
    `b_now`, with the pre-claim lease `b_lease`. It reads only ix_sessions_claimable.

    `pending` and the limit are literals, not bound parameters: Postgres may reuse a generic
    plan for a cached prepared statement, and a generic plan for `status = $1` cannot use the
    partial index, nor knows that `LIMIT $2` is a handful of rows."""
    where: list[sa.ColumnElement[bool]] = []
    if with_projects:
        where.append(_s.c.project.in_(sa.bindparam("b_projects", expanding=True)))
    claim = _claim_update(_queue_head(dialect, limit, where))
    # Whether messages wait for each claimed session: if none do, the poll need not read the
    # inbox. SQLAlchemy writes SQLite's RETURNING columns unqualified, and there the subquery
    # would read an unqualified `id` as its own table's: the session's id is named in full.
    session_id = _s.c.id if dialect == "postgresql" else sa.literal_column("sessions.id")
    claim = claim.returning(has_unacked_inbox(session_id).label("inbox"))
    if dialect == "postgresql":
        return Prepared(_with_claim_events(claim))
    return Prepared(claim)


def _claim_update(picked: sa.CTE) -> sa.Update:
    """Claim the sessions whose ids `picked` holds (the head of a queue, see _queue_head) for
    `b_worker`. No second `status = 'pending'` test: `picked` read them pending in this same
    statement, and on Postgres its FOR UPDATE re-tests that on the newest row version. The
    test would also let Postgres's planner find the rows through the whole claimable index,
    pending row by pending row, instead of by primary key."""
    return (
        _s.update()
        .where(_s.c.id == picked.c.id)
        .values(
            status=CLAIMED,
            worker_id=sa.bindparam("b_worker"),
            claimed_at=sa.bindparam("b_now"),
            updated_at=sa.bindparam("b_now"),
            lease_expires_at=sa.bindparam("b_lease"),
            lease_epoch=_s.c.lease_epoch + 1,
        )
        .returning(*_s.c)
    )


@functools.lru_cache(maxsize=8)
def pg_poll_statement(limit: int) -> Prepared:
    """Postgres only: a whole AgentFactory poll of `b_worker` on `b_queue` in one statement,
    when it can be: lock the worker row, count its live sessions, claim up to that many free
    slots (never more than `limit`, a literal for the plan's sake, as in claim_statement) with
    their history rows, and say whether messages wait. One row per claimed session, or one
    row of NULL session columns; every row carries the worker's `w_*` columns.

    The statement's snapshot is older than its lock on the worker row: a poll of the same
    worker that committed claims in between is invisible to the live count. Such a poll bumped
    `claim_seq` on the worker row, and the locked row is its newest version, so `w_fast` is
    false when the two disagree; it is also false for a worker with a project filter. The
    statement claims nothing then, and the caller takes the transactional path."""
    # The transactional poll's first read (capacity, live count, inbox), under the lock.
    locked = _WORKER_SLOTS.add_columns(_w.c.claim_seq).with_for_update(of=_w).cte("locked")
    seen_seq = (
        sa.select(_w.c.claim_seq).where(_w.c.id == sa.bindparam("b_worker")).scalar_subquery()
    )
    any_project = sa.and_(
        locked.c.projects.is_not(None),
        sa.cast(locked.c.projects, sa.Text).not_in(
            [sa.literal_column("'null'"), sa.literal_column("'[]'")]
        ),
    )
    slots = sa.select(
        locked.c.status.label("w_status"),
        locked.c.capacity.label("w_capacity"),
        locked.c.live.label("w_live"),
        sa.and_(locked.c.claim_seq == seen_seq, sa.not_(any_project)).label("w_fast"),
        locked.c.inbox.label("w_inbox"),
    ).cte("slots")
    room = sa.case(
        (
            sa.and_(slots.c.w_status == "active", slots.c.w_fast),
            sa.func.greatest(sa.func.least(slots.c.w_capacity - slots.c.w_live, limit), 0),
        ),
        else_=0,
    )
    free = sa.select(room.label("n")).cte("free")
    # The head of the queue, locked only once the worker is (the filter on `free` runs
    # first), then cut to the free slots.
    picked = (
        sa.select(_s.c.id, _s.c.priority, _s.c.queued_at)
        .where(
            _s.c.queue == sa.bindparam("b_queue"),
            _s.c.status == _PENDING_LITERAL,
            sa.select(free.c.n).scalar_subquery() > 0,
        )
        .order_by(_s.c.priority, _s.c.queued_at, _s.c.id)
        .limit(sa.literal_column(str(int(limit)), sa.Integer))
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    taken = (
        sa.select(picked.c.id)
        .order_by(picked.c.priority, picked.c.queued_at, picked.c.id)
        .limit(sa.select(free.c.n).scalar_subquery())
        .cte("taken")
    )
    claim = _claim_update(taken).returning(has_unacked_inbox(_s.c.id).label("inbox"))
    claimed = claim.cte("claimed")
    events = _claim_events(claimed)
    bump = _bump_claim_seq().where(sa.exists(sa.select(claimed.c.id))).cte("bump")
    return Prepared(
        sa.select(slots, claimed)
        .select_from(slots.outerjoin(claimed, sa.true()))
        .add_cte(events, bump)
    )


def _queue_head(dialect: str, limit: int, where: list[sa.ColumnElement[bool]]) -> sa.CTE:
    """The ids of the first `limit` pending sessions of `b_queue` that also match `where`, in
    queue order, as a CTE for an UPDATE to join to: Postgres may re-run an
    `IN (subquery LIMIT n)` and so touch more than n rows; a CTE is evaluated once."""
    candidates = (
        sa.select(_s.c.id)
        .where(_s.c.queue == sa.bindparam("b_queue"), _s.c.status == _PENDING_LITERAL, *where)
        .order_by(_s.c.priority, _s.c.queued_at, _s.c.id)
        .limit(sa.literal_column(str(int(limit)), sa.Integer))
    )
    if dialect == "postgresql":
        # Concurrent pollers skip each other's rows instead of queueing on them.
        candidates = candidates.with_for_update(skip_locked=True)
    return candidates.cte("picked")


def _with_claim_events(claim: sa.Update) -> sa.Select[Any]:
    """Postgres only (data-modifying CTEs): the claim and the history rows of what it claimed,
    in one statement; SqlStore._record_claims writes the same rows on SQLite."""
    claimed = claim.cte("claimed")
    return sa.select(claimed).add_cte(_claim_events(claimed))


def _claim_events(claimed: sa.CTE) -> sa.CTE:
    """The history rows of the sessions a claim CTE returns."""
    event_row = sa.select(
        claimed.c.id,
        sa.bindparam("b_now", type_=sa.BigInteger),
        sa.literal("status"),
        sa.literal(CLAIMED),
        claimed.c.worker_id,
        sa.null(),
        sa.func.jsonb_build_object("leaseEpoch", claimed.c.lease_epoch),
    )
    return t.session_events.insert().from_select(EVENT_COLUMNS, event_row).cte("events")


@functools.lru_cache(maxsize=64)
def _ending_in_one_statement(update: Prepared) -> Prepared:
    """Postgres only (data-modifying CTEs): a fenced session update (see fenced_update) with
    the rest of a terminal report in the same statement: its history event (parameters
    `e_*`), the inbox archived, the file reservations released. Only if the update matched
    do the others find a row to act on."""
    assert isinstance(update.statement, sa.Update)
    ended = update.statement.cte("ended")
    e, m, f = t.session_events, t.inbox_messages, t.file_locks
    names = EVENT_COLUMNS
    event_row = [ended.c.id] + [sa.bindparam(f"e_{n}", type_=e.c[n].type) for n in names[1:]]
    event = e.insert().from_select(names, sa.select(*event_row)).cte("event")
    ended_id = sa.select(ended.c.id).scalar_subquery()
    archive = (
        m.update()
        .where(m.c.session_id == ended_id, m.c.archived_at.is_(None))
        .values(archived_at=sa.bindparam("e_at", type_=m.c.archived_at.type))
        .cte("archive")
    )
    release = f.delete().where(f.c.session_id == ended_id).cte("release")
    return Prepared(sa.select(ended).add_cte(event, archive, release))


@functools.lru_cache(maxsize=2)
def deliver_statement(dialect: str) -> Prepared:
    """The environment work queue's delivery: mark the head of `b_queue` delivered to
    `b_worker` at `b_now`, if it was never delivered or not since `b_redeliver`."""
    return Prepared(_delivery(dialect, []))


@functools.lru_cache(maxsize=1)
def pg_environment_delivery() -> Prepared:
    """Postgres only: whether `b_queue` is an environment, and deliver_statement on its
    queue if it is, in one statement: a long poll's first look is one round trip, not two.
    Always one row: `env_found`, then the delivered session's columns, or NULLs."""
    projects = t.projects
    environment = sa.exists().where(
        projects.c.id == sa.bindparam("b_queue"), projects.c.kind == PROJECT_ENVIRONMENT
    )
    delivered = _delivery("postgresql", [environment]).cte("delivered")
    found = sa.select(environment.label("env_found")).cte("found")
    return Prepared(sa.select(found, delivered).select_from(found.outerjoin(delivered, sa.true())))


def _delivery(dialect: str, where: list[sa.ColumnElement[bool]]) -> sa.Update:
    deliverable = sa.or_(
        _s.c.delivered_at.is_(None), _s.c.delivered_at <= sa.bindparam("b_redeliver")
    )
    picked = _queue_head(dialect, 1, [deliverable, *where])
    return (
        _s.update()
        .where(_s.c.id == picked.c.id)  # no second test, as in _claim_update
        .values(delivered_to=sa.bindparam("b_worker"), delivered_at=sa.bindparam("b_now"))
        .returning(*_s.c)
    )


@functools.lru_cache(maxsize=2)
def poller_upsert(dialect: str) -> Prepared:
    qp = t.queue_pollers
    insert = pg.insert(qp) if dialect == "postgresql" else sqlite_dialect.insert(qp)
    values = {"queue": "b_queue", "worker_id": "b_worker", "polled_at": "b_now"}
    upsert = insert.values({column: sa.bindparam(name) for column, name in values.items()})
    return Prepared(
        upsert.on_conflict_do_update(
            index_elements=[qp.c.queue, qp.c.worker_id],
            set_={"polled_at": upsert.excluded.polled_at},
        )
    )


_NEXT_REDELIVERY = Prepared(
    sa.select(sa.func.min(_s.c.delivered_at).label("next")).where(
        _s.c.queue == sa.bindparam("b_queue"),
        _s.c.status == _PENDING_LITERAL,
        _s.c.delivered_at.is_not(None),
    )
)


_FORGET_POLLERS = Prepared(
    t.queue_pollers.delete().where(
        t.queue_pollers.c.queue == sa.bindparam("b_queue"),
        t.queue_pollers.c.polled_at < sa.bindparam("b_before"),
    )
)


def async_url(url: str) -> str:
    """Accept plain `sqlite:///` and `postgresql://` URLs and pick the driver."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+pysqlite"))
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(
        f"unsupported database URL scheme {parsed.drivername!r}: "
        "use sqlite:///path or postgresql://…"
    )


def expired_leases_query(now: int, limit: int) -> sa.Select[Any]:
    """The reaper's look-up: live sessions whose lease ran out before `now`, oldest first
    (read through ix_sessions_live_lease, which holds only leased sessions)."""
    return (
        sa.select(_s)
        .where(_s.c.lease_expires_at < now, _s.c.status.in_(LIVE_STATUSES))
        .order_by(_s.c.lease_expires_at)
        .limit(limit)
    )


def _session_from_row(row: sa.Row[Any]) -> SessionRecord:
    return SessionRecord.from_row(row._mapping)


def _sessions(rows: list[dict[str, Any]]) -> list[SessionRecord]:
    return [SessionRecord.from_row(row) for row in rows]


_SESSION_COLUMNS = frozenset(_s.c.keys())


def _session_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A result row cut to the sessions table's columns."""
    return {k: v for k, v in row.items() if k in _SESSION_COLUMNS}


def _worker_from_row(row: sa.Row[Any]) -> WorkerRecord:
    return WorkerRecord(**row._mapping)


class SqlStore(
    ChannelSql,
    RunsSql,
    ConversationsSql,
    ManagedSql,
    TenancySql,
    GitSql,
    StatsSql,
    IntegrationsSql,
    MemorySql,
    A2aSql,
    PublicSql,
    VaultSql,
    RoutingSql,
):
    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = async_url(url)
        self.schema = schema
        self.dialect = make_url(self.url).get_backend_name()
        self.observers = StoreObservers()
        self.db: Database = self._open(schema)
        self._capacity_seen: dict[str, int] = {}  # worker id -> capacity (a plan hint only)

    def _open(self, schema: str | None) -> Database:
        if self.dialect == "sqlite":
            # One connection serialises every transaction in this process: SQLite allows a
            # single writer anyway, and it rules out SQLITE_BUSY upgrades between our own
            # connections. Other processes (the CLI) are covered by busy_timeout.
            return LoopSqliteDatabase(sqlite_engine(self.url), self.observers)
        connect_args: dict[str, Any] = {}
        if schema:
            connect_args["server_settings"] = {"search_path": schema}
        # A fixed pool: "overflow" connections are opened for a burst and closed when it
        # passes, and a fleet of long polls is one burst after another. Opening a connection
        # costs several round trips; waiting a moment for a pooled one costs none.
        return AsyncEngineDatabase(
            async_engine(self.url, pool_size=20, max_overflow=0, connect_args=connect_args),
            self.observers,
        )

    # -- lifecycle --

    async def migrate(self) -> None:
        async with self.db.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})"))
                if self.schema:
                    quoted = conn.dialect.identifier_preparer.quote_identifier(self.schema)
                    await conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
            await conn.run_sync(_upgrade_to_head)

    async def close(self) -> None:
        await self.db.dispose()

    # -- settings --

    async def get_setting(self, key: str) -> str | None:
        async with self.db.connect() as conn:
            value = await conn.scalar(sa.select(t.settings.c.value).where(t.settings.c.key == key))
        return None if value is None else str(value)

    async def put_setting_if_absent(self, key: str, value: str) -> str:
        async with self.db.begin() as conn:
            current = await conn.scalar(
                sa.select(t.settings.c.value).where(t.settings.c.key == key)
            )
            if current is not None:
                return str(current)
            try:
                async with conn.begin_nested():
                    await conn.execute(t.settings.insert().values(key=key, value=value))
            except sa.exc.IntegrityError:
                # Another process won the race; its value stands.
                won = await conn.scalar(
                    sa.select(t.settings.c.value).where(t.settings.c.key == key)
                )
                return str(won)
        return value

    async def delete_setting(self, key: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(t.settings.delete().where(t.settings.c.key == key))

    async def workers_of_registration(self, registration_id: str) -> list[str]:
        w = t.workers
        query = sa.select(w.c.id).where(
            w.c.registration_id == registration_id, w.c.status == WORKER_ACTIVE
        )
        async with self.db.connect() as conn:
            return [r.id for r in await conn.execute(query)]

    # -- workers --

    async def insert_worker(self, worker: WorkerRecord) -> None:
        async with self.db.begin() as conn:
            await conn.execute(t.workers.insert().values(dataclasses.asdict(worker)))

    async def get_worker(self, worker_id: str) -> WorkerRecord | None:
        async with self.db.connect() as conn:
            rows = await conn.fetch(_GET_WORKER, {"b_id": worker_id})
        return WorkerRecord(**rows[0]) if rows else None

    async def touch_worker(
        self, worker_id: str, now: int, active_count: int | None
    ) -> WorkerRecord | None:
        w = t.workers
        values: dict[str, Any] = {"last_heartbeat_at": now}
        if active_count is not None:
            values["active_count"] = active_count
        async with self.db.begin() as conn:
            row = (
                await conn.execute(
                    w.update()
                    .where(w.c.id == worker_id, w.c.status == "active")
                    .values(values)
                    .returning(*w.c)
                )
            ).first()
        return None if row is None else _worker_from_row(row)

    async def mark_undercount(self, worker_id: str, since: int | None) -> None:
        w = t.workers
        async with self.db.begin() as conn:
            await conn.execute(w.update().where(w.c.id == worker_id).values(undercount_since=since))

    async def end_worker(
        self, worker_id: str, status: str, now: int, silent_since: int | None = None
    ) -> bool:
        w = t.workers
        where = [w.c.id == worker_id, w.c.status == "active"]
        if silent_since is not None:
            where.append(w.c.last_heartbeat_at < silent_since)
        async with self.db.begin() as conn:
            result = await conn.execute(
                w.update().where(*where).values(status=status, ended_at=now)
            )
        return result.rowcount > 0

    async def list_workers(
        self, status: str | None = None, org_id: str | None = None
    ) -> list[WorkerRecord]:
        query = sa.select(t.workers).order_by(t.workers.c.registered_at.desc())
        if status is not None:
            query = query.where(t.workers.c.status == status)
        if org_id is not None:
            query = query.where(t.workers.c.org_id == org_id)
        async with self.db.connect() as conn:
            return [_worker_from_row(r) for r in await conn.execute(query)]

    async def worker_page(self, page: WorkerPage) -> list[WorkerRecord]:
        w = t.workers
        query = sa.select(w).order_by(w.c.id).limit(page.limit)
        for column, wanted in (
            (w.c.org_id, page.org_id),
            (w.c.status, page.status),
            (w.c.protocol, page.protocol),
        ):
            if wanted is not None:
                query = query.where(column == wanted)
        if page.after_id is not None:
            query = query.where(w.c.id > page.after_id)
        async with self.db.connect() as conn:
            return [_worker_from_row(r) for r in await conn.execute(query)]

    async def silent_workers(self, cutoff: int) -> list[str]:
        w = t.workers
        async with self.db.connect() as conn:
            rows = await conn.execute(
                sa.select(w.c.id).where(w.c.status == "active", w.c.last_heartbeat_at < cutoff)
            )
            return [r.id for r in rows]

    async def earliest_expiries(self) -> tuple[int | None, int | None]:
        s, w = t.sessions, t.workers
        lease = sa.select(sa.func.min(s.c.lease_expires_at)).where(
            s.c.lease_expires_at.is_not(None), s.c.status.in_(LIVE_STATUSES)
        )
        heartbeat = sa.select(sa.func.min(w.c.last_heartbeat_at)).where(w.c.status == WORKER_ACTIVE)
        async with self.db.connect() as conn:
            return await conn.scalar(lease), await conn.scalar(heartbeat)

    async def count_live_sessions(self, worker_id: str) -> int:
        s = t.sessions
        async with self.db.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(s)
                .where(s.c.worker_id == worker_id, s.c.status.in_(LIVE_STATUSES))
            )
        return int(count or 0)

    # -- sessions --

    async def insert_session(self, session: SessionRecord, event: SessionEvent) -> None:
        try:
            async with self.db.begin() as conn:
                await conn.execute(t.sessions.insert().values(session_row(session)))
                await conn.run(INSERT_EVENT, event_values(event))
        except sa.exc.IntegrityError as exc:
            raise DuplicateKey(session.id) from exc

    async def get_session(self, session_id: str) -> SessionRecord | None:
        async with self.db.connect() as conn:
            rows = await conn.fetch(_GET_SESSION, {"b_id": session_id})
        return SessionRecord.from_row(rows[0]) if rows else None

    async def list_sessions(self, flt: SessionFilter) -> list[SessionRecord]:
        s = t.sessions
        query = sa.select(s).order_by(s.c.id.desc()).limit(flt.limit)
        for column, value in (
            (s.c.status, flt.status),
            (s.c.queue, flt.queue),
            (s.c.project, flt.project),
            (s.c.work_type, flt.work_type),
            (s.c.worker_id, flt.worker_id),
            (s.c.issue_id, flt.issue_id),
            (s.c.org_id, flt.org_id),
            (s.c.public_id, flt.public_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if flt.projects is not None:
            query = query.where(s.c.project.in_(sorted(flt.projects)))
        if flt.before_id is not None:
            query = query.where(s.c.id < flt.before_id)
        async with self.db.connect() as conn:
            return [_session_from_row(r) for r in await conn.execute(query)]

    async def issue_sessions(self, org_id: str, issue_id: str, limit: int) -> list[SessionRecord]:
        s = t.sessions
        query = (
            sa.select(s)
            .where(s.c.org_id == org_id, s.c.issue_id == issue_id)
            .order_by(s.c.created_at.desc(), s.c.id.desc())
            .limit(limit)
        )
        async with self.db.connect() as conn:
            return [_session_from_row(r) for r in await conn.execute(query)]

    async def live_sessions_of(self, worker_id: str) -> list[SessionRecord]:
        s = t.sessions
        async with self.db.connect() as conn:
            rows = await conn.execute(
                sa.select(s)
                .where(s.c.worker_id == worker_id, s.c.status.in_(LIVE_STATUSES))
                .order_by(s.c.id)
            )
            return [_session_from_row(r) for r in rows]

    async def last_written_at(self, session_id: str, worker_id: str) -> int | None:
        e = t.session_events
        query = sa.select(sa.func.max(e.c.at)).where(
            e.c.session_id == session_id, e.c.worker_id == worker_id
        )
        async with self.db.connect() as conn:
            at = await conn.scalar(query)
        return None if at is None else int(at)

    async def count_pending(self, queue: str) -> int:
        s = t.sessions
        async with self.db.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(s)
                .where(s.c.queue == queue, s.c.status == PENDING)
            )
        return int(count or 0)

    async def claim_next(
        self,
        queue: str,
        worker_id: str,
        limit: int,
        now: int,
        projects: Sequence[str] | None = None,
        lease_expires_at: int | None = None,
    ) -> list[SessionRecord]:
        if limit <= 0:
            return []
        async with self.db.begin() as conn:
            claimed, _ = await self._claim(
                conn, queue, worker_id, limit, now, projects, lease_expires_at
            )
        return claimed

    async def poll_worker(
        self,
        queue: str,
        worker_id: str,
        limit: int,
        now: int,
        lease_expires_at: int | None,
        inbox_per_lane: int,
    ) -> WorkerPoll | None:
        if self.dialect == "postgresql":
            done, polled = await self._poll_in_one_statement(
                queue, worker_id, limit, now, lease_expires_at, inbox_per_lane
            )
            if done:
                return polled
        async with self.db.begin() as conn:
            if self.dialect == "postgresql":
                # Lock the worker row first, in a statement of its own: the read below then
                # has a snapshot that sees every claim of a poll that held the lock before.
                locked = await conn.run(_BUMP_CLAIM_SEQ, {"b_worker": worker_id})
                if locked == 0:
                    return None
            # Read under the worker's row lock (SQLite: under its single writer), so that two
            # concurrent polls of one worker, or a poll racing the reaper, cannot over-claim.
            rows = await conn.fetch(_READ_WORKER_SLOTS, {"b_worker": worker_id})
            if not rows or rows[0]["status"] != "active":
                return None
            slots = rows[0]
            limit = min(limit, slots["capacity"] - slots["live"])
            claimed: list[SessionRecord] = []
            claimed_inbox = False  # whether a claimed session brings messages of its own
            if limit > 0:
                projects = slots["projects"] or None
                claimed, claimed_inbox = await self._claim(
                    conn, queue, worker_id, limit, now, projects, lease_expires_at
                )
            inbox = []
            if slots["inbox"] or claimed_inbox:
                inbox = await self._deliver_inbox(conn, worker_id, now, inbox_per_lane)
        return WorkerPoll(claimed, inbox, slots["capacity"] - slots["live"] - len(claimed))

    async def _poll_in_one_statement(
        self,
        queue: str,
        worker_id: str,
        limit: int,
        now: int,
        lease_expires_at: int | None,
        inbox_per_lane: int,
    ) -> tuple[bool, WorkerPoll | None]:
        """Postgres: (True, the poll), (True, None) for a worker that may not poll, or
        (False, None) when the transactional path must decide (see pg_poll_statement)."""
        # The statement's literal LIMIT: the worker's capacity as last seen, if smaller, so
        # that a poll locks no more queue rows than it can take.
        hint = min(limit, self._capacity_seen.get(worker_id, limit))
        params = {
            "b_queue": queue,
            "b_worker": worker_id,
            "b_now": now,
            "b_lease": lease_expires_at,
        }
        async with self.db.autocommit() as conn:
            rows = await conn.fetch(pg_poll_statement(max(hint, 1)), params)
        if not rows or rows[0]["w_status"] != "active":
            return True, None
        first = rows[0]
        if len(self._capacity_seen) >= 10_000:
            self._capacity_seen.clear()
        self._capacity_seen[worker_id] = first["w_capacity"]
        if not first["w_fast"]:
            return False, None
        claimed = _sessions([_session_columns(row) for row in rows if row["id"] is not None])
        claimed.sort(key=lambda x: (x.priority, x.queued_at, x.id))
        inbox: list[InboxMessage] = []
        if first["w_inbox"] or any(row["inbox"] for row in rows):
            async with self.db.begin() as conn:
                inbox = await self._deliver_inbox(conn, worker_id, now, inbox_per_lane)
        free = first["w_capacity"] - first["w_live"] - len(claimed)
        return True, WorkerPoll(claimed, inbox, free)

    async def _claim(
        self,
        conn: DbConnection,
        queue: str,
        worker_id: str,
        limit: int,
        now: int,
        projects: Sequence[str] | None,
        lease_expires_at: int | None,
    ) -> tuple[list[SessionRecord], bool]:
        """The sessions claimed, and whether any of them has messages waiting."""
        params: dict[str, Any] = {
            "b_queue": queue,
            "b_worker": worker_id,
            "b_now": now,
            "b_lease": lease_expires_at,
        }
        if projects is not None:
            params["b_projects"] = list(projects)
        claim = claim_statement(self.dialect, limit, projects is not None)
        rows = await conn.fetch(claim, params)
        inbox = any([row.pop("inbox") for row in rows])
        claimed = _sessions(rows)
        if self.dialect != "postgresql":  # there the claim statement wrote them
            await self._record_claims(conn, claimed, worker_id, now)
        claimed.sort(key=lambda x: (x.priority, x.queued_at, x.id))
        return claimed, inbox

    async def claim_session(
        self,
        session_id: str,
        queue: str,
        worker_id: str,
        now: int,
        lease_expires_at: int | None = None,
    ) -> SessionRecord | None:
        s = t.sessions
        async with self.db.begin() as conn:
            row = (
                await conn.execute(
                    s.update()
                    .where(s.c.id == session_id, s.c.queue == queue, s.c.status == PENDING)
                    .values(
                        status=CLAIMED,
                        worker_id=worker_id,
                        claimed_at=now,
                        updated_at=now,
                        lease_expires_at=lease_expires_at,
                        lease_epoch=s.c.lease_epoch + 1,
                    )
                    .returning(*s.c)
                )
            ).first()
            if row is None:
                return None
            claimed = _session_from_row(row)
            await self._record_claims(conn, [claimed], worker_id, now)
        return claimed

    @staticmethod
    async def _record_claims(
        conn: DbConnection, claimed: list[SessionRecord], worker_id: str, now: int
    ) -> None:
        if not claimed:
            return
        await conn.run(
            INSERT_EVENT,
            [
                {
                    "session_id": c.id,
                    "at": now,
                    "kind": "status",
                    "status": CLAIMED,
                    "worker_id": worker_id,
                    "reason": None,
                    "data": {"leaseEpoch": c.lease_epoch},
                }
                for c in claimed
            ],
        )

    async def update_session(
        self,
        session_id: str,
        expect: Expect,
        changes: Mapping[str, Any],
        event: SessionEvent | None,
        audit: Mapping[str, object] | None = None,
    ) -> SessionRecord | None:
        update, params = fenced_update(session_id, expect, changes)
        try:
            async with self.db.begin() as conn:
                if audit is not None:  # first: its entry precedes the trigger's (an end)
                    await conn.run(OUTBOX_INSERT, audit)
                rows = await conn.fetch(update, params)
                if not rows:
                    raise _Unchanged
                if event is not None:
                    await conn.run(INSERT_EVENT, event_values(event))
        except _Unchanged:
            return None
        updated = SessionRecord.from_row(rows[0])
        if ends_session(expect, changes):
            self.observers.ended(updated.queue, updated.status)
        if event is not None:
            self.observers.wrote_timeline(updated.id)
        return updated

    async def end_held_session(
        self, session_id: str, worker_id: str, changes: Mapping[str, Any], event: SessionEvent
    ) -> SessionRecord | None:
        expect = Expect(worker_id, 0, LIVE_STATUSES, any_epoch=True)
        update, params = fenced_update(session_id, expect, changes)
        if self.dialect == "postgresql":
            # One statement instead of six round trips (BEGIN, four writes, COMMIT).
            params.update({f"e_{k}": v for k, v in event_values(event).items()})
            async with self.db.autocommit() as conn:
                rows = await conn.fetch(_ending_in_one_statement(update), params)
        else:
            async with self.db.begin() as conn:
                rows = await conn.fetch(update, params)
                if rows:
                    await conn.run(INSERT_EVENT, event_values(event))
                    await self._release_holds(conn, session_id, event.at)
        if not rows:
            return None
        ended = SessionRecord.from_row(rows[0])
        if ends_session(expect, changes):
            self.observers.ended(ended.queue, ended.status)
        self.observers.wrote_timeline(ended.id)
        return ended

    async def expired_leases(self, now: int, limit: int = 100) -> list[SessionRecord]:
        async with self.db.connect() as conn:
            rows = await conn.execute(expired_leases_query(now, limit))
            return [_session_from_row(r) for r in rows]

    async def session_events(
        self, session_id: str, kinds: Sequence[str] | None = None
    ) -> list[SessionEvent]:
        e = t.session_events
        query = sa.select(e).where(e.c.session_id == session_id).order_by(e.c.id)
        if kinds is not None:
            query = query.where(e.c.kind.in_(list(kinds)))
        async with self.db.connect() as conn:
            return [SessionEvent(**r._mapping) for r in await conn.execute(query)]

    # -- projects (environments) --

    async def insert_project(self, project: ProjectRecord) -> None:
        async with self.db.begin() as conn:
            await conn.execute(t.projects.insert().values(dataclasses.asdict(project)))

    async def insert_project_if_missing(self, project: ProjectRecord) -> bool:
        """False (nothing written) if a project of that id exists."""
        async with self.db.begin() as conn:
            try:
                async with conn.begin_nested():
                    await conn.execute(t.projects.insert().values(dataclasses.asdict(project)))
            except sa.exc.IntegrityError:
                return False
        return True

    async def get_project(self, project_id: str) -> ProjectRecord | None:
        async with self.db.connect() as conn:
            rows = await conn.fetch(_GET_PROJECT, {"b_id": project_id})
        return ProjectRecord(**rows[0]) if rows else None

    async def list_projects(
        self,
        kind: str,
        *,
        include_archived: bool,
        after_id: str | None,
        limit: int,
        created_from: int | None = None,
        created_until: int | None = None,
        org_id: str | None = None,
    ) -> list[ProjectRecord]:
        p = t.projects
        query = sa.select(p).where(p.c.kind == kind).order_by(p.c.id).limit(limit)
        if org_id is not None:
            query = query.where(p.c.org_id == org_id)
        if not include_archived:
            query = query.where(p.c.archived_at.is_(None))
        if after_id is not None:
            query = query.where(p.c.id > after_id)
        if created_from is not None:
            query = query.where(p.c.created_at >= created_from)
        if created_until is not None:
            query = query.where(p.c.created_at <= created_until)
        async with self.db.connect() as conn:
            return [ProjectRecord(**r._mapping) for r in await conn.execute(query)]

    async def update_project(
        self, project_id: str, expected_updated_at: int, changes: Mapping[str, Any]
    ) -> ProjectRecord | None:
        p = t.projects
        async with self.db.begin() as conn:
            row = (
                await conn.execute(
                    p.update()
                    .where(p.c.id == project_id, p.c.updated_at == expected_updated_at)
                    .values(dict(changes))
                    .returning(*p.c)
                )
            ).first()
        return None if row is None else ProjectRecord(**row._mapping)

    async def delete_project(self, project_id: str) -> bool:
        async with self.db.begin() as conn:
            result = await conn.execute(t.projects.delete().where(t.projects.c.id == project_id))
        return result.rowcount > 0

    # -- environment work queues --

    async def count_unfinished(self, queue: str) -> int:
        s = t.sessions
        async with self.db.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(s)
                .where(s.c.queue == queue, s.c.status.in_((PENDING, *LIVE_STATUSES)))
            )
        return int(count or 0)

    async def deliver_next(
        self, queue: str, worker_id: str | None, now: int, redeliver_before: int
    ) -> SessionRecord | None:
        return await self._deliver(
            deliver_statement(self.dialect), queue, worker_id, now, redeliver_before
        )

    async def next_redelivery(self, queue: str) -> int | None:
        async with self.db.connect() as conn:
            rows = await conn.fetch(_NEXT_REDELIVERY, {"b_queue": queue})
        return None if not rows else rows[0]["next"]

    async def deliver_in_environment(
        self, environment_id: str, worker_id: str | None, now: int, redeliver_before: int
    ) -> Delivery:
        look = (environment_id, worker_id, now, redeliver_before)
        if self.dialect != "postgresql":  # two statements, but no round trips
            project = await self.get_project(environment_id)
            if project is None or project.kind != PROJECT_ENVIRONMENT:
                return Delivery(False, None)
            statement = deliver_statement(self.dialect)
            return Delivery(True, await self._deliver(statement, *look))
        (row,) = await self._fetch_delivery(pg_environment_delivery(), *look)
        found = bool(row.pop("env_found"))
        return Delivery(found, SessionRecord.from_row(row) if row["id"] is not None else None)

    async def _deliver(
        self, statement: Prepared, queue: str, worker_id: str | None, now: int, before: int
    ) -> SessionRecord | None:
        rows = await self._fetch_delivery(statement, queue, worker_id, now, before)
        return SessionRecord.from_row(rows[0]) if rows else None

    async def _fetch_delivery(
        self, statement: Prepared, queue: str, worker_id: str | None, now: int, before: int
    ) -> list[dict[str, Any]]:
        params = {"b_queue": queue, "b_worker": worker_id, "b_now": now, "b_redeliver": before}
        async with self.db.autocommit() as conn:
            return await conn.fetch(statement, params)

    async def record_polls(self, polls: list[tuple[str, str, int]]) -> None:
        params = [{"b_queue": q, "b_worker": w, "b_now": at} for q, w, at in polls]
        async with self.db.begin() as conn:
            await conn.run(poller_upsert(self.dialect), params)

    async def forget_pollers(self, queue: str, before: int) -> None:
        async with self.db.begin() as conn:
            await conn.run(_FORGET_POLLERS, {"b_queue": queue, "b_before": before})

    async def queue_stats(self, queue: str, recent_since: int, polling_since: int) -> QueueStats:
        s, qp = t.sessions, t.queue_pollers
        recent = sa.and_(s.c.delivered_at.is_not(None), s.c.delivered_at > recent_since)
        query = sa.select(
            sa.func.count().filter(sa.not_(recent)),
            sa.func.count().filter(recent),
            sa.func.min(s.c.queued_at),
        ).where(s.c.queue == queue, s.c.status == PENDING)
        async with self.db.connect() as conn:
            depth, pending, oldest = tuple((await conn.execute(query)).one())
            polling = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(qp)
                .where(qp.c.queue == queue, qp.c.polled_at >= polling_since)
            )
        return QueueStats(
            depth=int(depth or 0),
            pending=int(pending or 0),
            oldest_queued_at=None if oldest is None else int(oldest),
            workers_polling=int(polling or 0),
        )

    async def list_queue(
        self, queue: str, *, after_id: str | None, before_id: str | None, limit: int
    ) -> list[SessionRecord]:
        s = t.sessions
        query = sa.select(s).where(s.c.queue == queue).limit(limit)
        if before_id is not None:
            query = query.where(s.c.id < before_id).order_by(s.c.id.desc())
        else:
            query = query.order_by(s.c.id)
            if after_id is not None:
                query = query.where(s.c.id > after_id)
        async with self.db.connect() as conn:
            rows = [_session_from_row(r) for r in await conn.execute(query)]
        return sorted(rows, key=lambda r: r.id)


def sqlite_engine(url: str) -> sa.Engine:
    """The engine of a LoopSqliteDatabase: one connection, in WAL mode, whose driver begins
    no transaction by itself (pysqlite's implicit BEGIN would defeat the SAVEPOINTs of the
    group commit): LoopSqliteDatabase sends BEGIN and COMMIT."""
    engine = sa.create_engine(url, poolclass=sa.pool.StaticPool)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _upgrade_to_head(conn: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", _MIGRATIONS)
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
