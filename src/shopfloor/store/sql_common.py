"""SQL pieces shared by the store's modules (sql.py and its channel and runs mixins)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.records import Expect, SessionEvent


def in_constants(column: sa.ColumnElement[str], values: Sequence[str]) -> sa.ColumnElement[bool]:
    """`column IN ('a', 'b')` with the values written into the SQL text, for the code's own
    constant lists (statuses). A bound list is an "expanding" parameter, which SQLAlchemy
    renders into the SQL anew on every execution of a cached statement."""
    for value in values:
        if not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"not a constant: {value!r}")
    return column.in_([sa.literal_column(f"'{value}'", sa.String) for value in values])


def event_values(ev: SessionEvent) -> dict[str, Any]:
    """A session event as insert values; its id is assigned by the database."""
    values = dataclasses.asdict(ev)
    values.pop("id")
    return values


def fence(expect: Expect) -> list[sa.ColumnElement[bool]]:
    """The WHERE terms that make a write to the sessions table conditional on the lease the
    writer read: owner, epoch, and whichever optional fences `expect` sets."""
    s = t.sessions
    where = [
        s.c.worker_id.is_(None) if expect.worker_id is None else s.c.worker_id == expect.worker_id
    ]
    if not expect.any_epoch:
        where.append(s.c.lease_epoch == expect.lease_epoch)
    if expect.statuses:
        where.append(s.c.status.in_(expect.statuses))
    for name, value in expect.columns.items():
        column = s.c[name]
        where.append(column.is_(None) if value is None else column == value)
    if expect.lease_valid_at is not None:
        where.append(s.c.lease_expires_at >= expect.lease_valid_at)
    if expect.lease_expired_by is not None:
        where.append(s.c.lease_expires_at < expect.lease_expired_by)
    return where


@dataclasses.dataclass(frozen=True)
class _UpdateShape:
    """What a fenced session update's SQL depends on; its values are bound parameters."""

    changes: tuple[str, ...]
    any_epoch: bool
    owner_is_null: bool
    statuses: tuple[str, ...]
    columns: tuple[tuple[str, bool], ...]  # (name, expected IS NULL)
    lease_valid: bool
    lease_expired: bool


def fenced_update(
    session_id: str, expect: Expect, changes: Mapping[str, Any]
) -> tuple[sa.Update, dict[str, Any]]:
    """`UPDATE sessions SET changes WHERE id AND fence(expect) RETURNING *`, as a statement
    cached per shape and its parameters (the hot path's writes differ only in values)."""
    shape = _UpdateShape(
        changes=tuple(changes),
        any_epoch=expect.any_epoch,
        owner_is_null=expect.worker_id is None,
        statuses=tuple(expect.statuses),
        columns=tuple((name, value is None) for name, value in expect.columns.items()),
        lease_valid=expect.lease_valid_at is not None,
        lease_expired=expect.lease_expired_by is not None,
    )
    params: dict[str, Any] = {f"v_{name}": value for name, value in changes.items()}
    params.update(
        b_id=session_id,
        b_epoch=expect.lease_epoch,
        b_owner=expect.worker_id,
        b_valid_at=expect.lease_valid_at,
        b_expired_by=expect.lease_expired_by,
    )
    params.update({f"b_col_{name}": value for name, value in expect.columns.items()})
    return _update_statement(shape), params


@functools.lru_cache(maxsize=256)
def _update_statement(shape: _UpdateShape) -> sa.Update:
    s = t.sessions
    owner = s.c.worker_id
    where = [
        s.c.id == sa.bindparam("b_id"),
        owner.is_(None) if shape.owner_is_null else owner == sa.bindparam("b_owner"),
    ]
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
    values = {name: sa.bindparam(f"v_{name}", type_=s.c[name].type) for name in shape.changes}
    return s.update().where(*where).values(values).returning(*s.c)
