"""SQL pieces shared by the store's modules (sql.py and its channel and runs mixins)."""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.records import Expect, SessionEvent


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
        s.c.lease_epoch == expect.lease_epoch,
        s.c.worker_id.is_(None) if expect.worker_id is None else s.c.worker_id == expect.worker_id,
    ]
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
