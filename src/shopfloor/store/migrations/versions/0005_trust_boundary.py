"""Trust boundary: who reserved a file, and when a worker began to report fewer sessions
than it holds.

- file_locks.worker_id: the worker a reservation was made for (NULL when the caller named
  none), so that a call naming no worker never releases a named holder's reservations.
- workers.undercount_since: the first heartbeat, of an unbroken run, whose activeCount was
  below the sessions the worker holds; after a grace period the sessions it no longer
  reports are requeued.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("file_locks", sa.Column("worker_id", sa.String(64)))
    op.add_column("workers", sa.Column("undercount_since", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("workers", "undercount_since")
    op.drop_column("file_locks", "worker_id")
