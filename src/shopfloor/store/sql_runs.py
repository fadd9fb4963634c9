"""SQL for the run-oriented tables (Veryfront agent-workers). Mixed into SqlStore."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.db import Database, DbConnection
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
    ends_session,
    event_values,
    fence,
    fenced_update,
)


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
        r, s = t.runs, t.sessions
        terms, params = fence(expect)
        held = sa.exists().where(s.c.id == r.c.session_id, *terms)
        where: list[sa.ColumnElement[bool]] = [
            r.c.run_id == run_id,
            r.c.waiting_tool_call_id.is_(None),
            held,
        ]
        if expected_external_sequence is not None:
            where.append(r.c.latest_external_event_sequence == expected_external_sequence)
        if expected_event_id is not None:
            where.append(r.c.latest_event_id == expected_event_id)
        n = len(events)
        async with self.db.begin() as conn:
            row = (
                await conn.execute(
                    r.update()
                    .where(*where)
                    .values(
                        latest_event_id=r.c.latest_event_id + n,
                        latest_external_event_sequence=r.c.latest_external_event_sequence + n,
                        updated_at=now,
                    )
                    .returning(*r.c),
                    params,
                )
            ).first()
            if row is None:
                return None
            run = RunRecord(**row._mapping)
            first = run.latest_event_id - n + 1
            await conn.execute(
                t.run_events.insert(),
                [
                    {
                        "run_id": run_id,
                        "event_id": first + i,
                        "type": str(ev["type"]),
                        "at": now,
                        "payload": json.dumps(ev, separators=(",", ":")),
                    }
                    for i, ev in enumerate(events)
                ],
            )
        return run

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
