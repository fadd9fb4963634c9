"""SQL pieces shared by the store's modules (sql.py and its channel and runs mixins)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.db import Prepared
from shopfloor.store.records import TERMINAL_STATUSES, Expect, SessionEvent


def in_constants(column: sa.ColumnElement[str], values: Sequence[str]) -> sa.ColumnElement[bool]:
    """`column IN ('a', 'b')` with the values written into the SQL text, for the code's own
    constant lists (statuses). A bound list is an "expanding" parameter, which SQLAlchemy
    renders into the SQL anew on every execution of a cached statement."""
    for value in values:
        if not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"not a constant: {value!r}")
    return column.in_([sa.literal_column(f"'{value}'", sa.String) for value in values])


EVENT_COLUMNS = ("session_id", "at", "kind", "status", "worker_id", "reason", "data")
# One history row; its values are `event_values(event)`.
INSERT_EVENT = Prepared(
    t.session_events.insert().values(
        {n: sa.bindparam(n, type_=t.session_events.c[n].type) for n in EVENT_COLUMNS}
    )
)


# One audit outbox row (store/audit_triggers.py: action_row).
OUTBOX_INSERT = Prepared(
    t.audit_outbox.insert().values(
        {
            c.name: sa.bindparam(c.name, type_=c.type)
            for c in t.audit_outbox.columns
            if c.key != "id"
        }
    )
)


def event_values(ev: SessionEvent) -> dict[str, Any]:
    """A session event as insert values; its id is assigned by the database."""
    return {
        "session_id": ev.session_id,
        "at": ev.at,
        "kind": ev.kind,
        "status": ev.status,
        "worker_id": ev.worker_id,
        "reason": ev.reason,
        "data": ev.data,
    }


@dataclasses.dataclass(frozen=True)
class FenceShape:
    """What a fence's SQL depends on; its values are bound parameters (`b_*`)."""

    any_epoch: bool
    owner_is_null: bool
    statuses: tuple[str, ...]
    columns: tuple[tuple[str, bool], ...]  # (name, expected IS NULL)
    lease_valid: bool
    lease_expired: bool

    @classmethod
    def of(cls, expect: Expect) -> FenceShape:
        return cls(
            any_epoch=expect.any_epoch,
            owner_is_null=expect.worker_id is None,
            statuses=tuple(expect.statuses),
            columns=tuple((name, value is None) for name, value in expect.columns.items()),
            lease_valid=expect.lease_valid_at is not None,
            lease_expired=expect.lease_expired_by is not None,
        )


def fence(expect: Expect) -> tuple[list[sa.ColumnElement[bool]], dict[str, Any]]:
    """The WHERE terms that make a write to the sessions table conditional on the lease the
    writer read (owner, epoch, and whichever optional fences `expect` sets), and the values
    of their parameters, to pass when the statement is executed."""
    return fence_terms(FenceShape.of(expect)), fence_params(expect)


def fence_params(expect: Expect) -> dict[str, Any]:
    params: dict[str, Any] = {
        "b_epoch": expect.lease_epoch,
        "b_owner": expect.worker_id,
        "b_valid_at": expect.lease_valid_at,
        "b_expired_by": expect.lease_expired_by,
    }
    params.update({f"b_col_{name}": value for name, value in expect.columns.items()})
    return params


def fence_terms(shape: FenceShape) -> list[sa.ColumnElement[bool]]:
    s = t.sessions
    owner = s.c.worker_id
    where = [owner.is_(None) if shape.owner_is_null else owner == sa.bindparam("b_owner")]
    if not shape.any_epoch:
        where.append(s.c.lease_epoch == sa.bindparam("b_epoch"))
    if shape.statuses:
        where.append(in_constants(s.c.status, shape.statuses))
    for name, is_null in shape.columns:
        column = s.c[name]
        where.append(column.is_(None) if is_null else column == sa.bindparam(f"b_col_{name}"))
    if shape.lease_valid:
        where.append(s.c.lease_expires_at >= sa.bindparam("b_valid_at"))
    if shape.lease_expired:
        where.append(s.c.lease_expires_at < sa.bindparam("b_expired_by"))
    return where


def ends_session(expect: Expect, changes: Mapping[str, Any]) -> bool:
    """Whether a fenced update that applied ended a session: it sets a terminal status, and
    its fence admitted only open statuses (not a change to a session already ended)."""
    return changes.get("status") in TERMINAL_STATUSES and not any(
        status in TERMINAL_STATUSES for status in expect.statuses
    )


def fenced_update(
    session_id: str, expect: Expect, changes: Mapping[str, Any]
) -> tuple[Prepared, dict[str, Any]]:
    """`UPDATE sessions SET changes WHERE id AND fence(expect) RETURNING *`, as a statement
    cached per shape (which columns change, which fences apply) and its parameters: the hot
    path's writes differ only in values."""
    params = fence_params(expect)
    params["b_id"] = session_id
    params.update({f"v_{name}": value for name, value in changes.items()})
    return _update_statement(tuple(changes), FenceShape.of(expect)), params


@functools.lru_cache(maxsize=256)
def _update_statement(changes: tuple[str, ...], shape: FenceShape) -> Prepared:
    s = t.sessions
    values = {name: sa.bindparam(f"v_{name}", type_=s.c[name].type) for name in changes}
    where = [s.c.id == sa.bindparam("b_id"), *fence_terms(shape)]
    return Prepared(s.update().where(*where).values(values).returning(*s.c))
