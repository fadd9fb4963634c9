"""SQL for the managed-agent tables (agents, managed sessions) and their event log, which is
the session's timeline. Mixed into SqlStore."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.db import Database, DbConnection, Prepared
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.managed_records import (
    TERMINATED,
    TURN_MODEL,
    TURN_TOOLS,
    AgentRecord,
    AgentVersionRecord,
    EventQuery,
    ManagedFilter,
    ManagedSessionRecord,
)
from shopfloor.store.records import (
    TERMINAL_STATUSES,
    SessionEvent,
    SessionRecord,
    session_row,
)
from shopfloor.store.sql_common import EVENT_COLUMNS, INSERT_EVENT, event_values

# The statements of every tool round trip are built once and sent straight to the driver
# (see Prepared); a statement built per call cost more than SQLite takes to run it.
_m, _e = t.managed_sessions, t.session_events
_GET_MANAGED = Prepared(sa.select(_m).where(_m.c.session_id == sa.bindparam("b_id")))
_INSERT_EVENT_RETURNING_ID = Prepared(
    _e.insert()
    .values({n: sa.bindparam(n, type_=_e.c[n].type) for n in EVENT_COLUMNS})
    .returning(_e.c.id)
)
_EVENT_KIND = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # safe as a SQL literal


@functools.lru_cache(maxsize=128)
def _update_managed(columns: tuple[str, ...]) -> Prepared:
    """`UPDATE managed_sessions SET <columns>, rev = rev + 1 WHERE session_id AND rev`."""
    values: dict[str, Any] = {c: sa.bindparam(f"v_{c}", type_=_m.c[c].type) for c in columns}
    values["rev"] = _m.c.rev + 1
    where = (_m.c.session_id == sa.bindparam("b_id"), _m.c.rev == sa.bindparam("b_rev"))
    return Prepared(_m.update().where(*where).values(values).returning(*_m.c))


@functools.lru_cache(maxsize=128)
def _events_query(
    kinds: tuple[str, ...],
    descending: bool,
    after: bool,
    at_after: bool,
    at_before: bool,
    above: bool = False,
    below: bool = False,
) -> Prepared:
    """A session's events of these kinds (literals, so the statement is one per kind set),
    in id order, with the optional bounds as parameters (`b_*`)."""
    for kind in kinds:
        if not _EVENT_KIND.match(kind):
            raise ValueError(f"not an event kind: {kind!r}")
    literal = [sa.literal_column(f"'{kind}'", sa.String) for kind in kinds]
    where = [_e.c.session_id == sa.bindparam("b_session")]
    where.append(_e.c.kind.in_(literal) if literal else sa.false())
    if after:
        cursor = sa.bindparam("b_after", type_=sa.BigInteger)
        where.append(_e.c.id < cursor if descending else _e.c.id > cursor)
    if above:
        where.append(_e.c.id > sa.bindparam("b_above", type_=sa.BigInteger))
    if below:
        where.append(_e.c.id < sa.bindparam("b_below", type_=sa.BigInteger))
    if at_after:
        where.append(_e.c.at > sa.bindparam("b_at_after", type_=sa.BigInteger))
    if at_before:
        where.append(_e.c.at < sa.bindparam("b_at_before", type_=sa.BigInteger))
    order = _e.c.id.desc() if descending else _e.c.id
    limit = sa.bindparam("b_limit", type_=sa.Integer)
    return Prepared(sa.select(_e).where(*where).order_by(order).limit(limit))


def _agent(row: sa.Row[Any]) -> AgentRecord:
    return AgentRecord(**row._mapping)


def _managed(row: sa.Row[Any] | Mapping[str, Any]) -> ManagedSessionRecord:
    values = row._mapping if isinstance(row, sa.Row) else row
    return ManagedSessionRecord(**values)


async def _insert_events(conn: DbConnection, events: Sequence[SessionEvent]) -> list[SessionEvent]:
    """Insert events one by one, in order, and return them with their ids."""
    stored = []
    for event in events:
        (row,) = await conn.fetch(_INSERT_EVENT_RETURNING_ID, event_values(event))
        stored.append(dataclasses.replace(event, id=int(row["id"])))
    return stored


class ManagedSql:
    db: Database
    dialect: str

    # -- agents --

    async def insert_agent(self, agent: AgentRecord, first: AgentVersionRecord) -> None:
        try:
            async with self.db.begin() as conn:
                await conn.execute(t.agents.insert().values(dataclasses.asdict(agent)))
                await conn.execute(t.agent_versions.insert().values(dataclasses.asdict(first)))
        except sa.exc.IntegrityError as exc:
            raise DuplicateKey(agent.id) from exc

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(t.agents).where(t.agents.c.id == agent_id))).first()
        return None if row is None else _agent(row)

    async def get_agent_version(self, agent_id: str, version: int) -> AgentVersionRecord | None:
        v = t.agent_versions
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(v).where(v.c.agent_id == agent_id, v.c.version == version)
                )
            ).first()
        return None if row is None else AgentVersionRecord(**row._mapping)

    async def list_agents(
        self,
        *,
        project: str | None,
        include_archived: bool,
        after_id: str | None,
        limit: int,
        created_from: int | None = None,
        created_to: int | None = None,
        org_id: str | None = None,
    ) -> list[AgentRecord]:
        """Agents in id order after `after_id`; with `project`, only that project's; with
        `org_id`, only that organisation's."""
        a = t.agents
        query = sa.select(a).order_by(a.c.id).limit(limit)
        if project is not None:
            query = query.where(a.c.project == project)
        if org_id is not None:
            query = query.where(a.c.org_id == org_id)
        if not include_archived:
            query = query.where(a.c.archived_at.is_(None))
        if after_id is not None:
            query = query.where(a.c.id > after_id)
        if created_from is not None:
            query = query.where(a.c.created_at >= created_from)
        if created_to is not None:
            query = query.where(a.c.created_at <= created_to)
        async with self.db.connect() as conn:
            return [_agent(r) for r in await conn.execute(query)]

    async def list_agent_versions(
        self, agent_id: str, *, after_version: int | None, limit: int
    ) -> list[AgentVersionRecord]:
        v = t.agent_versions
        query = sa.select(v).where(v.c.agent_id == agent_id).order_by(v.c.version).limit(limit)
        if after_version is not None:
            query = query.where(v.c.version > after_version)
        async with self.db.connect() as conn:
            return [AgentVersionRecord(**r._mapping) for r in await conn.execute(query)]

    async def add_agent_version(
        self, agent_id: str, expected_version: int, definition: dict[str, Any], now: int
    ) -> AgentRecord | None:
        """Make `definition` the agent's next version, only if its current version is still
        `expected_version` and it is not archived; None otherwise."""
        a = t.agents
        async with self.db.begin() as conn:
            row = (
                await conn.execute(
                    a.update()
                    .where(
                        a.c.id == agent_id,
                        a.c.version == expected_version,
                        a.c.archived_at.is_(None),
                    )
                    .values(version=expected_version + 1, updated_at=now)
                    .returning(*a.c)
                )
            ).first()
            if row is None:
                return None
            await conn.execute(
                t.agent_versions.insert().values(
                    agent_id=agent_id,
                    version=expected_version + 1,
                    definition=definition,
                    created_at=now,
                )
            )
        return _agent(row)

    async def archive_agent(self, agent_id: str, now: int) -> AgentRecord | None:
        a = t.agents
        async with self.db.begin() as conn:
            await conn.execute(
                a.update()
                .where(a.c.id == agent_id, a.c.archived_at.is_(None))
                .values(archived_at=now, updated_at=now)
            )
            row = (await conn.execute(sa.select(a).where(a.c.id == agent_id))).first()
        return None if row is None else _agent(row)

    # -- managed sessions --

    async def insert_managed_session(
        self,
        session: SessionRecord,
        created: SessionEvent,
        managed: ManagedSessionRecord,
        events: Sequence[SessionEvent],
    ) -> list[SessionEvent]:
        """Insert a session row (its work item), its managed row and its first events in one
        transaction; returns the events with their ids."""
        try:
            async with self.db.begin() as conn:
                await conn.execute(t.sessions.insert().values(session_row(session)))
                await conn.run(INSERT_EVENT, event_values(created))
                await conn.execute(t.managed_sessions.insert().values(dataclasses.asdict(managed)))
                return await _insert_events(conn, events)
        except sa.exc.IntegrityError as exc:
            raise DuplicateKey(session.id) from exc

    async def get_managed_session(self, session_id: str) -> ManagedSessionRecord | None:
        async with self.db.connect() as conn:
            rows = await conn.fetch(_GET_MANAGED, {"b_id": session_id})
        return _managed(rows[0]) if rows else None

    async def list_managed_sessions(self, flt: ManagedFilter) -> list[ManagedSessionRecord]:
        """Not deleted, in id order (= creation order) after the cursor, as `flt` asks."""
        m = t.managed_sessions
        order = m.c.session_id.desc() if flt.descending else m.c.session_id
        query = sa.select(m).where(m.c.deleted_at.is_(None)).order_by(order).limit(flt.limit)
        for column, value in (
            (m.c.environment_id, flt.environment_id),
            (m.c.agent_id, flt.agent_id),
            (m.c.agent_version, flt.agent_version),
        ):
            if value is not None:
                query = query.where(column == value)
        if flt.org_id is not None:
            s = t.sessions
            query = query.join(s, s.c.id == m.c.session_id).where(s.c.org_id == flt.org_id)
        if flt.statuses:
            query = query.where(m.c.status.in_(list(flt.statuses)))
        if not flt.include_archived:
            query = query.where(m.c.archived_at.is_(None))
        if flt.created_after is not None:
            query = query.where(m.c.created_at > flt.created_after)
        if flt.created_before is not None:
            query = query.where(m.c.created_at < flt.created_before)
        if flt.after_id is not None:
            beyond = (
                m.c.session_id < flt.after_id if flt.descending else m.c.session_id > flt.after_id
            )
            query = query.where(beyond)
        async with self.db.connect() as conn:
            return [_managed(r) for r in await conn.execute(query)]

    async def update_managed_session(
        self,
        session_id: str,
        expected_rev: int,
        changes: Mapping[str, Any],
        events: Sequence[SessionEvent] = (),
    ) -> tuple[ManagedSessionRecord, list[SessionEvent]] | None:
        """Apply `changes` and append `events` in one transaction, only if the managed row's
        `rev` is still `expected_rev` (it becomes one more); None, with nothing written,
        otherwise. The update locks the row first, so one session's events are inserted, and
        numbered, in the order their transactions commit."""
        columns = tuple(sorted(changes))
        params = {f"v_{c}": changes[c] for c in columns}
        params.update(b_id=session_id, b_rev=expected_rev)
        async with self.db.begin() as conn:
            rows = await conn.fetch(_update_managed(columns), params)
            if not rows:
                return None
            stored = await _insert_events(conn, events)
        return _managed(rows[0]), stored

    async def managed_events(self, session_id: str, query: EventQuery) -> list[SessionEvent]:
        statement = _events_query(
            tuple(sorted(query.kinds)),
            query.descending,
            query.after_id is not None,
            query.at_after is not None,
            query.at_before is not None,
            query.above is not None,
            query.below is not None,
        )
        params = {
            "b_session": session_id,
            "b_after": query.after_id,
            "b_above": query.above,
            "b_below": query.below,
            "b_at_after": query.at_after,
            "b_at_before": query.at_before,
            "b_limit": query.limit,
        }
        async with self.db.connect() as conn:
            return [SessionEvent(**row) for row in await conn.fetch(statement, params)]

    async def last_event_id(self, session_id: str, kinds: Sequence[str]) -> int:
        e = t.session_events
        query = sa.select(sa.func.max(e.c.id)).where(
            e.c.session_id == session_id, e.c.kind.in_(list(kinds))
        )
        async with self.db.connect() as conn:
            found = await conn.scalar(query)
        return int(found or 0)

    async def event_position(
        self, session_id: str, event_id: str, kinds: Sequence[str]
    ) -> int | None:
        e = t.session_events
        query = sa.select(e.c.id).where(
            e.c.session_id == session_id,
            e.c.kind.in_(list(kinds)),
            e.c.data["id"].as_string() == event_id,
        )
        async with self.db.connect() as conn:
            found = await conn.scalar(query.limit(1))
        return None if found is None else int(found)

    async def due_turns(self, now: int, limit: int = 100) -> list[str]:
        """Sessions whose model call is due and whose turn lease is free or ran out."""
        m = t.managed_sessions
        query = (
            sa.select(m.c.session_id)
            .where(
                m.c.turn == TURN_MODEL,
                sa.or_(m.c.turn_expires_at.is_(None), m.c.turn_expires_at < now),
                m.c.status != TERMINATED,
            )
            .order_by(m.c.turn_expires_at)
            .limit(limit)
        )
        async with self.db.connect() as conn:
            return [r.session_id for r in await conn.execute(query)]

    async def stranded_turns(self, limit: int = 100) -> list[str]:
        """Sessions whose turn waits for tool calls while their work item has ended: the
        calls have no worker unless the item is queued again."""
        m, s = t.managed_sessions, t.sessions
        query = (
            sa.select(m.c.session_id)
            .join(s, s.c.id == m.c.session_id)
            .where(
                m.c.turn == TURN_TOOLS,
                m.c.status != TERMINATED,
                s.c.status.in_(list(TERMINAL_STATUSES)),
            )
            .limit(limit)
        )
        async with self.db.connect() as conn:
            return [r.session_id for r in await conn.execute(query)]
