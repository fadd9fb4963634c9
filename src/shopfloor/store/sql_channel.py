"""SQL for the session channel: events with a lease fence, issue locks and parked sessions,
the inbox, file locks, issue records and recovery packets. Mixed into SqlStore."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from shopfloor.store import audit_triggers
from shopfloor.store import schema as t
from shopfloor.store.db import Database, DbConnection, Prepared
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.observers import StoreObservers
from shopfloor.store.records import (
    LIVE_STATUSES,
    PARKED,
    PENDING,
    STOPPED,
    TERMINAL_STATUSES,
    Expect,
    FileLock,
    InboxMessage,
    IssueLock,
    IssueRecord,
    RecoveryPacket,
    SessionEvent,
    SessionRecord,
    session_row,
)
from shopfloor.store.sql_common import (
    EVENT_COLUMNS,
    INSERT_EVENT,
    OUTBOX_INSERT,
    FenceShape,
    event_values,
    fence_params,
    fence_terms,
    in_constants,
)

LANE_ORDER = {"urgent": 0, "normal": 1}


def _lock_of(org_id: str | None, issue_id: str | None) -> sa.ColumnElement[bool]:
    """The issue lock of an issue of an organisation: two organisations' issues never share
    a lock, whatever their ids."""
    lk = t.issue_locks
    return sa.and_(lk.c.org_id == org_id, lk.c.issue_id == issue_id)


def _issue_of(org_id: str, issue_id: str) -> sa.ColumnElement[bool]:
    i = t.issues
    return sa.and_(i.c.org_id == org_id, i.c.id == issue_id)


def _holder_gone() -> sa.ColumnElement[bool]:
    """True when an issue lock's holder session is missing or has ended."""
    s, lk = t.sessions, t.issue_locks
    return ~sa.exists().where(s.c.id == lk.c.session_id, s.c.status.not_in(TERMINAL_STATUSES))


_e = t.session_events
_INSERT_EVENT_RETURNING = Prepared(
    _e.insert()
    .values({n: sa.bindparam(n, type_=_e.c[n].type) for n in EVENT_COLUMNS})
    .returning(_e.c.id)
)


@functools.lru_cache(maxsize=64)
def _fenced_event_insert(shape: FenceShape) -> Prepared:
    """`INSERT INTO session_events SELECT values WHERE EXISTS (the session, fenced)
    RETURNING id`: the fence and the insert in one statement, cached per fence shape."""
    s = t.sessions
    held = sa.exists().where(s.c.id == sa.bindparam("b_id"), *fence_terms(shape))
    values = sa.select(*(sa.bindparam(n, type_=_e.c[n].type) for n in EVENT_COLUMNS)).where(held)
    return Prepared(_e.insert().from_select(EVENT_COLUMNS, values).returning(_e.c.id))


_m, _f = t.inbox_messages, t.file_locks
_ARCHIVE_INBOX = Prepared(
    _m.update()
    .where(_m.c.session_id == sa.bindparam("b_session"), _m.c.archived_at.is_(None))
    .values(archived_at=sa.bindparam("v_now"))
)


def _released_by(worker_id: str | None) -> sa.ColumnElement[bool]:
    """The reservations a worker may release: its own and those nobody is named on. A caller
    that names no worker releases only the latter, never a named holder's."""
    unnamed = _f.c.worker_id.is_(None)
    return unnamed if worker_id is None else sa.or_(unnamed, _f.c.worker_id == worker_id)


_RELEASE_FILES = Prepared(_f.delete().where(_f.c.session_id == sa.bindparam("b_session")))


# A message still to be read: neither acknowledged nor archived.
_UNACKED = (_m.c.acked_at.is_(None), _m.c.archived_at.is_(None))


def unacked_inbox(worker_id: sa.ColumnElement[str]) -> sa.Select[Any]:
    """Messages of the sessions a worker holds: live ones, and stopped ones whose stop message
    is still to be acknowledged (any other end archives the inbox). The status filter keeps a
    long-lived worker's finished sessions out of every poll."""
    return (
        sa.select(_m)
        .join(t.sessions, t.sessions.c.id == _m.c.session_id)
        .where(
            t.sessions.c.worker_id == worker_id,
            in_constants(t.sessions.c.status, (*LIVE_STATUSES, STOPPED)),
            *_UNACKED,
        )
    )


def has_unacked_inbox(session_id: sa.ColumnElement[str]) -> sa.Exists:
    """Whether a session has messages not yet acknowledged nor archived (for one it holds)."""
    return sa.exists().where(_m.c.session_id == session_id, *_UNACKED)


_UNACKED_INBOX_OF_WORKER = Prepared(
    unacked_inbox(sa.bindparam("b_worker")).order_by(_m.c.session_id, _m.c.created_at, _m.c.id)
)


class ChannelSql:
    db: Database
    observers: StoreObservers
    dialect: str

    def _for_update(self, query: sa.Select[Any]) -> sa.Select[Any]:
        return query.with_for_update() if self.dialect == "postgresql" else query

    # -- events --

    async def append_session_event(
        self, event: SessionEvent, expect: Expect | None = None
    ) -> SessionEvent | None:
        """One statement: the insert, fenced on the session when `expect` is given (None if
        the fence fails), so on PostgreSQL it needs no transaction of its own."""
        values = event_values(event)
        if expect is None:
            query, params = _INSERT_EVENT_RETURNING, values
        else:
            params = fence_params(expect)
            query = _fenced_event_insert(FenceShape.of(expect))
            params.update(values, b_id=event.session_id)
        async with self.db.autocommit() as conn:
            rows = await conn.fetch(query, params)
        if not rows:
            return None
        self.observers.wrote_timeline(event.session_id)
        return dataclasses.replace(event, id=int(rows[0]["id"]))

    async def session_events_after(
        self, session_id: str, after_id: int = 0, limit: int = 500
    ) -> list[SessionEvent]:
        e = t.session_events
        query = (
            sa.select(e)
            .where(e.c.session_id == session_id, e.c.id > after_id)
            .order_by(e.c.id)
            .limit(limit)
        )
        async with self.db.connect() as conn:
            return [SessionEvent(**r._mapping) for r in await conn.execute(query)]

    # -- issue locks and parked sessions --

    async def insert_session_with_issue_lock(
        self,
        session: SessionRecord,
        event: SessionEvent,
        lock_expires_at: int,
        created_by: tuple[str, str] | None = None,
    ) -> SessionRecord:
        """Insert a new session. If it names an issue whose lock another live session holds,
        it is inserted `parked` and replaces any parked session of the same work type.
        `created_by` (actor id, type): its session.created fact goes to the audit outbox in
        the same transaction."""
        try:
            return await self._insert_with_issue_lock(session, event, lock_expires_at, created_by)
        except sa.exc.IntegrityError as exc:
            raise DuplicateKey(session.id) from exc

    async def _insert_with_issue_lock(
        self,
        session: SessionRecord,
        event: SessionEvent,
        lock_expires_at: int,
        created_by: tuple[str, str] | None,
    ) -> SessionRecord:
        now = session.created_at
        superseded: list[str] = []
        async with self.db.begin() as conn:
            if session.issue_id is not None and not await self._acquire_issue_lock(
                conn, session, now, lock_expires_at
            ):
                holder = await conn.scalar(
                    sa.select(t.issue_locks.c.session_id).where(
                        _lock_of(session.org_id, session.issue_id)
                    )
                )
                session = dataclasses.replace(session, status=PARKED)
                event = dataclasses.replace(
                    event,
                    status=PARKED,
                    reason=f"parked: issue {session.issue_id} is locked by {holder}",
                )
                superseded = await self._supersede_parked(conn, session, now)
            await conn.execute(t.sessions.insert().values(session_row(session)))
            await conn.run(INSERT_EVENT, event_values(event))
            if created_by is not None:
                fact = audit_triggers.action_row(session, audit_triggers.CREATED_EVENT, created_by)
                await conn.run(OUTBOX_INSERT, fact)
        for queue in superseded:
            self.observers.ended(queue, STOPPED)
        return session

    async def _acquire_issue_lock(
        self, conn: DbConnection, session: SessionRecord, now: int, expires_at: int
    ) -> bool:
        lk, s = t.issue_locks, t.sessions
        row = {
            "org_id": session.org_id,
            "issue_id": session.issue_id,
            "session_id": session.id,
            "work_type": session.work_type,
            "locked_at": now,
            "expires_at": expires_at,
        }
        try:
            async with conn.begin_nested():
                await conn.execute(lk.insert().values(row))
            return True
        except sa.exc.IntegrityError:
            pass
        current = (
            await conn.execute(
                self._for_update(sa.select(lk).where(_lock_of(session.org_id, session.issue_id)))
            )
        ).first()
        if current is None:  # released between our insert and our read
            await conn.execute(lk.insert().values(row))
            return True
        holder_status = await conn.scalar(sa.select(s.c.status).where(s.c.id == current.session_id))
        if current.expires_at > now and holder_status not in (None, *TERMINAL_STATUSES):
            return False
        await conn.execute(
            lk.update().where(_lock_of(session.org_id, session.issue_id)).values(row)
        )
        return True

    async def _supersede_parked(
        self, conn: DbConnection, newer: SessionRecord, now: int
    ) -> list[str]:
        """Stop the issue's parked sessions of `newer`'s organisation and work type; their
        queues."""
        s = t.sessions
        superseded = await conn.execute(
            s.update()
            .where(
                s.c.org_id == newer.org_id,
                s.c.issue_id == newer.issue_id,
                s.c.status == PARKED,
                s.c.work_type.is_not_distinct_from(newer.work_type),
            )
            .values(status=STOPPED, updated_at=now)
            .returning(s.c.id, s.c.queue)
        )
        rows = superseded.all()
        ids = [r.id for r in rows]
        if ids:
            await conn.execute(
                t.session_events.insert(),
                [
                    {
                        "session_id": sid,
                        "at": now,
                        "kind": "status",
                        "status": STOPPED,
                        "worker_id": None,
                        "reason": f"superseded by newer parked work {newer.id}",
                        "data": {},
                    }
                    for sid in ids
                ],
            )
        return [r.queue for r in rows]

    async def get_issue_lock(self, org_id: str, issue_id: str) -> IssueLock | None:
        lk = t.issue_locks
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(lk).where(_lock_of(org_id, issue_id)))).first()
        return None if row is None else IssueLock(**row._mapping)

    async def refresh_issue_lock(
        self,
        org_id: str,
        issue_id: str,
        session_id: str,
        work_type: str | None,
        now: int,
        expires_at: int,
    ) -> bool:
        """Extend the session's lock; take the lock if nobody holds it. False if another
        session holds it."""
        lk = t.issue_locks
        async with self.db.begin() as conn:
            updated = await conn.execute(
                lk.update()
                .where(_lock_of(org_id, issue_id), lk.c.session_id == session_id)
                .values(expires_at=expires_at)
            )
            if updated.rowcount > 0:
                return True
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        lk.insert().values(
                            org_id=org_id,
                            issue_id=issue_id,
                            session_id=session_id,
                            work_type=work_type,
                            locked_at=now,
                            expires_at=expires_at,
                        )
                    )
            except sa.exc.IntegrityError:
                return False
        return True

    async def stale_issue_locks(self, now: int, limit: int = 100) -> list[IssueLock]:
        """Locks past their TTL, or whose holder has ended or vanished."""
        lk = t.issue_locks
        query = (
            sa.select(lk)
            .where(sa.or_(lk.c.expires_at <= now, _holder_gone()))
            .order_by(lk.c.expires_at)
            .limit(limit)
        )
        async with self.db.connect() as conn:
            return [IssueLock(**r._mapping) for r in await conn.execute(query)]

    async def release_issue_lock(
        self,
        org_id: str,
        issue_id: str,
        session_id: str,
        now: int,
        lock_expires_at: int,
        *,
        stale_only: bool = False,
    ) -> SessionRecord | None:
        """Drop `session_id`'s lock on the issue (with `stale_only`, only if it expired or its
        holder ended) and promote the best parked session of the organisation's issue, which
        takes the lock. Returns the promoted session."""
        lk, s = t.issue_locks, t.sessions
        where = [_lock_of(org_id, issue_id), lk.c.session_id == session_id]
        if stale_only:
            where.append(sa.or_(lk.c.expires_at <= now, _holder_gone()))
        async with self.db.begin() as conn:
            deleted = await conn.execute(lk.delete().where(*where))
            if deleted.rowcount == 0:
                return None
            pick = self._for_update(
                sa.select(s.c.id)
                .where(s.c.org_id == org_id, s.c.issue_id == issue_id, s.c.status == PARKED)
                .order_by(s.c.priority, s.c.queued_at, s.c.id)
                .limit(1)
            )
            next_id = await conn.scalar(pick)
            if next_id is None:
                return None
            row = (
                await conn.execute(
                    s.update()
                    .where(s.c.id == next_id, s.c.status == PARKED)
                    .values(status=PENDING, updated_at=now)
                    .returning(*s.c)
                )
            ).first()
            if row is None:
                return None
            promoted = SessionRecord(**row._mapping)
            await conn.execute(
                lk.insert().values(
                    org_id=org_id,
                    issue_id=issue_id,
                    session_id=promoted.id,
                    work_type=promoted.work_type,
                    locked_at=now,
                    expires_at=lock_expires_at,
                )
            )
            await conn.execute(
                t.session_events.insert().values(
                    session_id=promoted.id,
                    at=now,
                    kind="status",
                    status=PENDING,
                    worker_id=None,
                    reason=f"promoted: issue lock released by {session_id}",
                    data={},
                )
            )
        return promoted

    # -- inbox --

    async def insert_inbox_message(self, message: InboxMessage) -> None:
        async with self.db.begin() as conn:
            await conn.execute(t.inbox_messages.insert().values(dataclasses.asdict(message)))

    async def deliver_inbox(
        self, worker_id: str, now: int, per_lane: int = 10
    ) -> list[InboxMessage]:
        """Unacknowledged messages of the sessions the worker holds, urgent lane first, at most
        `per_lane` per session and lane. Each is marked delivered (again)."""
        async with self.db.begin() as conn:
            return await self._deliver_inbox(conn, worker_id, now, per_lane)

    @staticmethod
    async def _deliver_inbox(
        conn: DbConnection, worker_id: str, now: int, per_lane: int
    ) -> list[InboxMessage]:
        m = t.inbox_messages
        found = await conn.fetch(_UNACKED_INBOX_OF_WORKER, {"b_worker": worker_id})
        rows = [InboxMessage(**r) for r in found]
        rows.sort(key=lambda x: (x.session_id, LANE_ORDER.get(x.lane, 9)))
        picked: list[InboxMessage] = []
        counts: dict[tuple[str, str], int] = {}
        for msg in rows:
            key = (msg.session_id, msg.lane)
            if counts.get(key, 0) < per_lane:
                counts[key] = counts.get(key, 0) + 1
                picked.append(msg)
        if picked:
            await conn.execute(
                m.update()
                .where(m.c.id.in_([x.id for x in picked]))
                .values(
                    delivered_at=sa.func.coalesce(m.c.delivered_at, now),
                    delivery_count=m.c.delivery_count + 1,
                )
            )
        return [
            dataclasses.replace(
                x, delivered_at=x.delivered_at or now, delivery_count=x.delivery_count + 1
            )
            for x in picked
        ]

    async def ack_inbox_message(
        self, session_id: str, message_id: str, now: int
    ) -> InboxMessage | None:
        """Acknowledge one message (idempotent); None if the session has no such message."""
        m = t.inbox_messages
        async with self.db.begin() as conn:
            await conn.execute(
                m.update()
                .where(m.c.id == message_id, m.c.session_id == session_id, m.c.acked_at.is_(None))
                .values(acked_at=now)
            )
            row = (
                await conn.execute(
                    sa.select(m).where(m.c.id == message_id, m.c.session_id == session_id)
                )
            ).first()
        return None if row is None else InboxMessage(**row._mapping)

    async def release_session_holds(self, session_id: str, now: int) -> tuple[int, int]:
        async with self.db.begin() as conn:
            return await self._release_holds(conn, session_id, now)

    @staticmethod
    async def _release_holds(conn: DbConnection, session_id: str, now: int) -> tuple[int, int]:
        archived = await conn.run(_ARCHIVE_INBOX, {"b_session": session_id, "v_now": now})
        released = await conn.run(_RELEASE_FILES, {"b_session": session_id})
        return archived, released

    async def list_inbox(self, session_id: str) -> list[InboxMessage]:
        m = t.inbox_messages
        query = sa.select(m).where(m.c.session_id == session_id).order_by(m.c.created_at, m.c.id)
        async with self.db.connect() as conn:
            return [InboxMessage(**r._mapping) for r in await conn.execute(query)]

    # -- file locks --

    async def reserve_files(
        self,
        repo_id: str,
        session_id: str,
        paths: Sequence[str],
        now: int,
        expires_at: int,
        reason: str | None = None,
        worker_id: str | None = None,
    ) -> tuple[list[str], list[FileLock]]:
        """Reserve each path for the session, on behalf of `worker_id` (None: a caller that
        named no worker); the session's own reservations are renewed and pass to that worker.
        Return the reserved paths and the live reservations of other sessions that block the
        rest."""
        f = t.file_locks
        reserved: list[str] = []
        conflicts: list[FileLock] = []
        async with self.db.begin() as conn:
            for path in sorted(set(paths)):  # one lock order, so two reservers cannot deadlock
                row = {
                    "repo_id": repo_id,
                    "path": path,
                    "session_id": session_id,
                    "reserved_at": now,
                    "expires_at": expires_at,
                    "reason": reason,
                    "worker_id": worker_id,
                }
                try:
                    async with conn.begin_nested():
                        await conn.execute(f.insert().values(row))
                    reserved.append(path)
                    continue
                except sa.exc.IntegrityError:
                    pass
                key = [f.c.repo_id == repo_id, f.c.path == path]
                current = (await conn.execute(self._for_update(sa.select(f).where(*key)))).first()
                if current is None:
                    await conn.execute(f.insert().values(row))
                    reserved.append(path)
                elif current.session_id == session_id:
                    renewed = {"expires_at": expires_at, "worker_id": worker_id}
                    await conn.execute(f.update().where(*key).values(renewed))
                    reserved.append(path)
                elif current.expires_at <= now:
                    await conn.execute(f.update().where(*key).values(row))
                    reserved.append(path)
                else:
                    conflicts.append(FileLock(**current._mapping))
        order = {p: i for i, p in enumerate(paths)}
        reserved.sort(key=lambda p: order[p])
        conflicts.sort(key=lambda c: order[c.path])
        return reserved, conflicts

    async def file_conflicts(
        self, repo_id: str, session_id: str, paths: Sequence[str], now: int
    ) -> list[FileLock]:
        f = t.file_locks
        query = sa.select(f).where(
            f.c.repo_id == repo_id,
            f.c.path.in_(list(paths)),
            f.c.session_id != session_id,
            f.c.expires_at > now,
        )
        async with self.db.connect() as conn:
            found = [FileLock(**r._mapping) for r in await conn.execute(query)]
        order = {p: i for i, p in enumerate(paths)}
        return sorted(found, key=lambda c: order[c.path])

    async def release_files(
        self, repo_id: str, session_id: str, paths: Sequence[str], worker_id: str | None
    ) -> int:
        f = t.file_locks
        where = [f.c.repo_id == repo_id, f.c.path.in_(list(paths)), _released_by(worker_id)]
        async with self.db.begin() as conn:
            result = await conn.execute(f.delete().where(f.c.session_id == session_id, *where))
        return int(result.rowcount)

    async def release_session_files(self, session_id: str, worker_id: str | None) -> int:
        f = t.file_locks
        async with self.db.begin() as conn:
            result = await conn.execute(
                f.delete().where(f.c.session_id == session_id, _released_by(worker_id))
            )
        return int(result.rowcount)

    # -- issue records --

    async def upsert_issue(self, issue: IssueRecord) -> IssueRecord:
        """Insert the issue, or update it with the record's non-empty fields."""
        i = t.issues
        key = _issue_of(issue.org_id, issue.id)
        async with self.db.begin() as conn:
            current = (await conn.execute(self._for_update(sa.select(i).where(key)))).first()
            if current is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(i.insert().values(dataclasses.asdict(issue)))
                    return issue
                except sa.exc.IntegrityError:
                    pass
            changes = {
                k: v
                for k, v in dataclasses.asdict(issue).items()
                if v not in (None, []) and k not in ("org_id", "id", "created_at")
            }
            row = (
                await conn.execute(i.update().where(key).values(changes).returning(*i.c))
            ).first()
        assert row is not None
        return IssueRecord(**row._mapping)

    async def find_issue(self, org_id: str, key: str) -> IssueRecord | None:
        """An issue of the organisation by id, else by identifier (e.g. ENG-1)."""
        i = t.issues
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(i).where(_issue_of(org_id, key)))).first()
            if row is None:
                by_identifier = sa.select(i).where(i.c.org_id == org_id, i.c.identifier == key)
                row = (await conn.execute(by_identifier.order_by(i.c.id).limit(1))).first()
        return None if row is None else IssueRecord(**row._mapping)

    async def update_issue(
        self, org_id: str, issue_id: str, changes: Mapping[str, Any]
    ) -> IssueRecord | None:
        i = t.issues
        update = i.update().where(_issue_of(org_id, issue_id)).values(dict(changes))
        async with self.db.begin() as conn:
            row = (await conn.execute(update.returning(*i.c))).first()
        return None if row is None else IssueRecord(**row._mapping)

    # -- recovery packets --

    async def insert_recovery_packet(self, packet: RecoveryPacket) -> None:
        async with self.db.begin() as conn:
            await conn.execute(t.recovery_packets.insert().values(dataclasses.asdict(packet)))

    async def recovery_packets(self, session_id: str) -> list[RecoveryPacket]:
        r = t.recovery_packets
        query = sa.select(r).where(r.c.session_id == session_id).order_by(r.c.attempt, r.c.id)
        async with self.db.connect() as conn:
            return [RecoveryPacket(**x._mapping) for x in await conn.execute(query)]
