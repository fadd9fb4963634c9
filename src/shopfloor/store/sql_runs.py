"""SQL for the run-oriented tables (Veryfront agent-workers). Mixed into SqlStore."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from shopfloor.store import schema as t
from shopfloor.store.db import Database, DbConnection, Prepared
from shopfloor.store.observers import StoreObservers
from shopfloor.store.records import (
    LIVE_STATUSES,
    PENDING,
    TERMINAL_STATUSES,
    Expect,
    SessionEvent,
    SessionRecord,
    WorkerRecord,
    session_row,
)
from shopfloor.store.run_records import (
    AgentWorkerRecord,
    RunEventRecord,
    RunRecord,
    WorkerSessionRecord,
)
from shopfloor.store.sql_common import (
    INSERT_EVENT,
    FenceShape,
    ends_session,
    event_values,
    fence_params,
    fence_terms,
    fenced_update,
)

_r, _s, _ws, _a, _w = t.runs, t.sessions, t.run_worker_sessions, t.agent_workers, t.workers


def _labelled(table: sa.Table, prefix: str) -> list[sa.Label[Any]]:
    return [c.label(prefix + c.name) for c in table.c]


def _names(table: sa.Table, prefix: str) -> tuple[tuple[str, str], ...]:
    """(label, column name) of each of a table's columns, as `_labelled` names them."""
    return tuple((prefix + c.name, c.name) for c in table.c)


def _unlabelled(row: Mapping[str, Any], names: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return {name: row[label] for label, name in names}


_R, _S, _WS = _names(_r, "r_"), _names(_s, "s_"), _names(_ws, "w_")
_A, _W = _names(_a, "a_"), _names(_w, "w_")


# A run, its session and the worker session of the session's holder, in one read.
_RUN_STATE = Prepared(
    sa.select(*_labelled(_r, "r_"), *_labelled(_s, "s_"), *_labelled(_ws, "w_"))
    .select_from(
        _r.join(_s, _s.c.id == _r.c.session_id).outerjoin(
            _ws, sa.and_(_ws.c.run_id == _r.c.run_id, _ws.c.worker_id == _s.c.worker_id)
        )
    )
    .where(_r.c.run_id == sa.bindparam("b_run"))
)
# A worker token's agent worker with its workers row, in one read.
_WORKER_BY_TOKEN = Prepared(
    sa.select(*_labelled(_a, "a_"), *_labelled(_w, "w_"))
    .select_from(_a.join(_w, _w.c.id == _a.c.worker_id))
    .where(_a.c.token_hash == sa.bindparam("b_hash"))
)
_INSERT_RUN_EVENT = Prepared(
    t.run_events.insert().values(
        {c.name: sa.bindparam(c.name, type_=c.type) for c in t.run_events.c}
    )
)


@functools.lru_cache(maxsize=64)
def _append_update(shape: FenceShape, external: bool, event_id: bool) -> sa.Update:
    """The run's cursors advanced by `b_n`, only while its session matches the fence (and
    the given cursors match), returning the run; cached per shape."""
    held = sa.exists().where(_s.c.id == _r.c.session_id, *fence_terms(shape))
    where: list[sa.ColumnElement[bool]] = [
        _r.c.run_id == sa.bindparam("b_run"),
        _r.c.waiting_tool_call_id.is_(None),
        held,
    ]
    if external:
        where.append(_r.c.latest_external_event_sequence == sa.bindparam("b_external"))
    if event_id:
        where.append(_r.c.latest_event_id == sa.bindparam("b_event_id"))
    n = sa.bindparam("b_n", type_=sa.BigInteger)
    return (
        _r.update()
        .where(*where)
        .values(
            latest_event_id=_r.c.latest_event_id + n,
            latest_external_event_sequence=_r.c.latest_external_event_sequence + n,
            updated_at=sa.bindparam("b_now", type_=sa.BigInteger),
        )
        .returning(*_r.c)
    )


@functools.lru_cache(maxsize=64)
def _append_prepared(shape: FenceShape, external: bool, event_id: bool) -> Prepared:
    return Prepared(_append_update(shape, external, event_id))


@functools.lru_cache(maxsize=64)
def _append_in_one(shape: FenceShape, external: bool, event_id: bool) -> Prepared:
    """PostgreSQL: the fenced cursor update and the events' insert as one statement (a
    data-modifying WITH), one round trip with no transaction of its own. The events come as
    two arrays (`b_types`, `b_payloads`); the update returns the run, none if it did not
    apply, and then nothing is inserted."""
    updated = _append_update(shape, external, event_id).cte("updated")
    texts = postgresql.ARRAY(sa.Text)
    events = (
        sa.func.unnest(
            sa.bindparam("b_types", type_=texts), sa.bindparam("b_payloads", type_=texts)
        )
        .table_valued("type", "payload", with_ordinality="ordinal")
        .render_derived("events")
    )
    rows = sa.select(
        updated.c.run_id,
        updated.c.latest_event_id - sa.bindparam("b_n", type_=sa.BigInteger) + events.c.ordinal,
        events.c.type,
        sa.bindparam("b_now", type_=sa.BigInteger),
        events.c.payload,
    ).select_from(updated.join(events, sa.true()))
    columns = ["run_id", "event_id", "type", "at", "payload"]
    inserted = t.run_events.insert().from_select(columns, rows).cte("inserted")
    return Prepared(sa.select(*updated.c).add_cte(inserted))


class RunsSql:
    db: Database
    observers: StoreObservers
    dialect: str

    # -- agent workers --

    async def register_agent_worker(
        self, worker: WorkerRecord, details: AgentWorkerRecord
    ) -> tuple[WorkerRecord, AgentWorkerRecord]:
        """Insert a worker with its details, or, if (project, kind, key) is already
        registered, revive that worker under its old id with the new token and details."""
        for _attempt in range(3):
            async with self.db.begin() as conn:
                existing = await self._agent_worker_by_key(conn, details)
                if existing is None:
                    try:
                        async with conn.begin_nested():
                            await conn.execute(
                                t.workers.insert().values(dataclasses.asdict(worker))
                            )
                            await conn.execute(
                                t.agent_workers.insert().values(dataclasses.asdict(details))
                            )
                    except sa.exc.IntegrityError:
                        continue  # a concurrent registration of the same key won; revive it
                    return worker, details
                return await self._revive(conn, existing, worker, details)
        raise RuntimeError("worker registration kept conflicting")

    async def _agent_worker_by_key(
        self, conn: DbConnection, d: AgentWorkerRecord
    ) -> AgentWorkerRecord | None:
        a = t.agent_workers
        row = (
            await conn.execute(
                sa.select(a).where(
                    a.c.project_id == d.project_id,
                    a.c.implementation_kind == d.implementation_kind,
                    a.c.worker_key == d.worker_key,
                )
            )
        ).first()
        return None if row is None else AgentWorkerRecord(**row._mapping)

    async def _revive(
        self,
        conn: DbConnection,
        existing: AgentWorkerRecord,
        worker: WorkerRecord,
        details: AgentWorkerRecord,
    ) -> tuple[WorkerRecord, AgentWorkerRecord]:
        w, a = t.workers, t.agent_workers
        row = (
            await conn.execute(
                w.update()
                .where(w.c.id == existing.worker_id)
                .values(
                    status=worker.status,
                    ended_at=None,
                    hostname=worker.hostname,
                    last_heartbeat_at=worker.last_heartbeat_at,
                    metadata=worker.metadata,
                    registration_id=worker.registration_id,
                )
                .returning(*w.c)
            )
        ).first()
        assert row is not None
        changes = {
            "token_hash": details.token_hash,
            "project_name": details.project_name,
            "implementation_display_name": details.implementation_display_name,
            "display_name": details.display_name,
            "metadata": details.metadata,
            "updated_at": details.updated_at,
        }
        await conn.execute(a.update().where(a.c.worker_id == existing.worker_id).values(changes))
        return WorkerRecord(**row._mapping), dataclasses.replace(existing, **changes)

    async def get_agent_worker(self, worker_id: str) -> AgentWorkerRecord | None:
        a = t.agent_workers
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(a).where(a.c.worker_id == worker_id))).first()
        return None if row is None else AgentWorkerRecord(**row._mapping)

    async def find_agent_worker_by_token(self, token_hash: str) -> AgentWorkerRecord | None:
        a = t.agent_workers
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(a).where(a.c.token_hash == token_hash))).first()
        return None if row is None else AgentWorkerRecord(**row._mapping)

    # -- runs --

    async def insert_run(self, session: SessionRecord, run: RunRecord, event: SessionEvent) -> bool:
        """Insert a run with its session row; False if the run id or the (project,
        idempotency key) pair is already taken."""
        async with self.db.begin() as conn:
            try:
                async with conn.begin_nested():
                    await conn.execute(t.sessions.insert().values(session_row(session)))
                    await conn.execute(t.runs.insert().values(dataclasses.asdict(run)))
                    await conn.run(INSERT_EVENT, event_values(event))
            except sa.exc.IntegrityError:
                return False
        return True

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._one_run(t.runs.c.run_id == run_id)

    async def get_run_by_session(self, session_id: str) -> RunRecord | None:
        return await self._one_run(t.runs.c.session_id == session_id)

    async def find_run_by_idempotency(self, project_id: str, key: str) -> RunRecord | None:
        r = t.runs
        return await self._one_run(
            sa.and_(r.c.project_id == project_id, r.c.idempotency_key == key)
        )

    async def _one_run(self, where: sa.ColumnElement[bool]) -> RunRecord | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(t.runs).where(where))).first()
        return None if row is None else RunRecord(**row._mapping)

    async def append_run_events(
        self,
        run_id: str,
        expect: Expect,
        events: Sequence[Mapping[str, Any]],
        now: int,
        expected_external_sequence: int | None = None,
        expected_event_id: int | None = None,
    ) -> RunRecord | None:
        """Append events and advance both cursors by their count, only if the run's session
        still matches `expect` and the given cursors match; None otherwise."""
        shape = (
            FenceShape.of(expect),
            expected_external_sequence is not None,
            expected_event_id is not None,
        )
        params = fence_params(expect)
        n = len(events)
        params.update(
            b_run=run_id,
            b_n=n,
            b_now=now,
            b_external=expected_external_sequence,
            b_event_id=expected_event_id,
        )
        payloads = [json.dumps(ev, separators=(",", ":")) for ev in events]
        if self.dialect == "postgresql":
            params.update(b_types=[str(ev["type"]) for ev in events], b_payloads=payloads)
            async with self.db.autocommit() as conn:
                rows = await conn.fetch(_append_in_one(*shape), params)
            return RunRecord(**rows[0]) if rows else None
        async with self.db.begin() as conn:
            rows = await conn.fetch(_append_prepared(*shape), params)
            if not rows:
                return None
            run = RunRecord(**rows[0])
            first = run.latest_event_id - n + 1
            await conn.run(
                _INSERT_RUN_EVENT,
                [
                    {
                        "run_id": run_id,
                        "event_id": first + i,
                        "type": str(ev["type"]),
                        "at": now,
                        "payload": payload,
                    }
                    for i, (ev, payload) in enumerate(zip(events, payloads, strict=True))
                ],
            )
        return run

    async def get_run_state(
        self, run_id: str
    ) -> tuple[RunRecord, SessionRecord, WorkerSessionRecord | None] | None:
        """A run, its session, and the worker session of the session's holder (None if it
        has none or no holder), in one read."""
        async with self.db.connect() as conn:
            rows = await conn.fetch(_RUN_STATE, {"b_run": run_id})
        if not rows:
            return None
        row = rows[0]
        worker_session = _unlabelled(row, _WS)
        return (
            RunRecord(**_unlabelled(row, _R)),
            SessionRecord.from_row(_unlabelled(row, _S)),
            None if worker_session["id"] is None else WorkerSessionRecord(**worker_session),
        )

    async def find_agent_worker_and_worker_by_token(
        self, token_hash: str
    ) -> tuple[AgentWorkerRecord, WorkerRecord] | None:
        async with self.db.connect() as conn:
            rows = await conn.fetch(_WORKER_BY_TOKEN, {"b_hash": token_hash})
        if not rows:
            return None
        row = rows[0]
        return AgentWorkerRecord(**_unlabelled(row, _A)), WorkerRecord(**_unlabelled(row, _W))

    async def finish_run(
        self,
        run_id: str,
        session_id: str,
        expect: Expect,
        session_changes: Mapping[str, Any],
        run_changes: Mapping[str, Any],
        event: SessionEvent,
        worker_session_status: str | None = None,
    ) -> tuple[SessionRecord, RunRecord] | None:
        """Apply a terminal change to a run's session and run rows together, only if the
        session still matches `expect`; None otherwise. In the same transaction the run's
        open input requests are cancelled and, with `worker_session_status`, its worker
        sessions still open end with that status."""
        r, ws, ir = t.runs, t.run_worker_sessions, t.input_requests
        update, params = fenced_update(session_id, expect, session_changes)
        now = event.at
        async with self.db.begin() as conn:
            srows = await conn.fetch(update, params)
            if not srows:
                return None
            rrow = (
                await conn.execute(
                    r.update().where(r.c.run_id == run_id).values(dict(run_changes)).returning(*r.c)
                )
            ).first()
            assert rrow is not None
            await conn.run(INSERT_EVENT, event_values(event))
            if worker_session_status is not None:
                await conn.execute(
                    ws.update()
                    .where(ws.c.run_id == run_id, ws.c.ended_at.is_(None))
                    .values(status=worker_session_status, ended_at=now, updated_at=now)
                )
            await conn.execute(
                ir.update()
                .where(ir.c.run_id == run_id, ir.c.status == "open")
                .values(status="cancelled", cancelled_at=now, updated_at=now)
            )
        session = SessionRecord.from_row(srows[0])
        if ends_session(expect, session_changes):
            self.observers.ended(session.queue, session.status)
        self.observers.wrote_timeline(session.id)
        return session, RunRecord(**rrow._mapping)

    async def update_run(
        self, run_id: str, changes: Mapping[str, Any], *, where_null: Sequence[str] = ()
    ) -> RunRecord | None:
        """Change a run row, only while the columns named in `where_null` are still NULL
        (not JSON columns: a JSON null is not SQL NULL)."""
        r = t.runs
        where = [r.c.run_id == run_id, *(r.c[name].is_(None) for name in where_null)]
        async with self.db.begin() as conn:
            row = (
                await conn.execute(r.update().where(*where).values(dict(changes)).returning(*r.c))
            ).first()
        return None if row is None else RunRecord(**row._mapping)

    async def list_project_runs(
        self, project_id: str, before: tuple[int, str] | None, limit: int
    ) -> list[tuple[RunRecord, SessionRecord]]:
        """A project's runs, newest first, older than `before` (created_at, run_id)."""
        r, s = t.runs, t.sessions
        where: list[sa.ColumnElement[bool]] = [r.c.project_id == project_id]
        if before is not None:
            where.append(sa.tuple_(r.c.created_at, r.c.run_id) < sa.tuple_(*before))
        query = (
            sa.select(r, s)
            .join(s, s.c.id == r.c.session_id)
            .where(*where)
            .order_by(r.c.created_at.desc(), r.c.run_id.desc())
            .limit(limit)
        )
        run_keys = [c.name for c in r.c]
        session_keys = [c.name for c in s.c]
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).all()
        found = []
        for row in rows:
            values = tuple(row)
            run = RunRecord(**dict(zip(run_keys, values[: len(run_keys)], strict=True)))
            session = SessionRecord(**dict(zip(session_keys, values[len(run_keys) :], strict=True)))
            found.append((run, session))
        return found

    async def active_conversation_runs(self, conversation_id: str) -> list[RunRecord]:
        """The runs of a conversation that have not ended."""
        r, s = t.runs, t.sessions
        query = (
            sa.select(r)
            .join(s, s.c.id == r.c.session_id)
            .where(
                r.c.conversation_id == conversation_id,
                s.c.status.in_([PENDING, *LIVE_STATUSES]),
            )
        )
        async with self.db.connect() as conn:
            return [RunRecord(**row._mapping) for row in await conn.execute(query)]

    async def append_server_event(
        self, run_id: str, event: Mapping[str, Any], now: int
    ) -> RunRecord | None:
        """Append one event the server produced; None if there is no such run."""
        async with self.db.begin() as conn:
            return await server_event(conn, run_id, event, now)

    async def list_run_events(
        self, run_id: str, after_event_id: int = 0, limit: int = 1000
    ) -> list[RunEventRecord]:
        e = t.run_events
        query = (
            sa.select(e)
            .where(e.c.run_id == run_id, e.c.event_id > after_event_id)
            .order_by(e.c.event_id)
            .limit(limit)
        )
        async with self.db.connect() as conn:
            return [
                RunEventRecord(**{**r._mapping, "payload": json.loads(r.payload)})
                for r in await conn.execute(query)
            ]

    # -- worker sessions --

    async def put_worker_session(self, record: WorkerSessionRecord) -> WorkerSessionRecord:
        """Upsert the (run, worker) session: a new row keeps `record.id`; an existing one
        keeps its id and created_at and takes the rest."""
        ws = t.run_worker_sessions
        changes = {
            "session_key": record.session_key,
            "status": record.status,
            "metadata": record.metadata,
            "updated_at": record.updated_at,
            "ended_at": record.ended_at,
            "implementation_kind": record.implementation_kind,
        }
        for _attempt in range(3):
            async with self.db.begin() as conn:
                row = (
                    await conn.execute(
                        ws.update()
                        .where(ws.c.run_id == record.run_id, ws.c.worker_id == record.worker_id)
                        .values(changes)
                        .returning(*ws.c)
                    )
                ).first()
                if row is not None:
                    return WorkerSessionRecord(**row._mapping)
                try:
                    async with conn.begin_nested():
                        await conn.execute(ws.insert().values(dataclasses.asdict(record)))
                except sa.exc.IntegrityError:
                    continue  # a concurrent PUT inserted it first; update that row
                return record
        raise RuntimeError("worker session upsert kept conflicting")

    async def get_worker_session(self, run_id: str, worker_id: str) -> WorkerSessionRecord | None:
        ws = t.run_worker_sessions
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(ws).where(ws.c.run_id == run_id, ws.c.worker_id == worker_id)
                )
            ).first()
        return None if row is None else WorkerSessionRecord(**row._mapping)


async def server_event(
    conn: DbConnection,
    run_id: str,
    event: Mapping[str, Any],
    now: int,
    *,
    waiting_for: str | None = None,
) -> RunRecord | None:
    """Append one event the server produced: it advances latest_event_id only, not the
    external sequence the worker writes against. With `waiting_for`, only while the run
    (not ended) waits for that tool call, and the wait ends with it. None if the run does
    not match."""
    r, s = t.runs, t.sessions
    where: list[sa.ColumnElement[bool]] = [r.c.run_id == run_id]
    changes: dict[str, Any] = {"latest_event_id": r.c.latest_event_id + 1, "updated_at": now}
    if waiting_for is not None:
        going_on = sa.exists().where(
            s.c.id == r.c.session_id, s.c.status.notin_(list(TERMINAL_STATUSES))
        )
        where += [r.c.waiting_tool_call_id == waiting_for, going_on]
        changes.update(waiting_tool_call_id=None, waiting_tool_name=None)
    row = (await conn.execute(r.update().where(*where).values(changes).returning(*r.c))).first()
    if row is None:
        return None
    run = RunRecord(**row._mapping)
    await conn.execute(
        t.run_events.insert().values(
            run_id=run_id,
            event_id=run.latest_event_id,
            type=str(event["type"]),
            at=now,
            payload=json.dumps(event, separators=(",", ":")),
        )
    )
    return run
