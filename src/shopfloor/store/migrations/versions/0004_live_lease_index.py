"""ix_sessions_live_lease: the lease-expiry index holds only sessions with a lease.

The reaper looks up expired leases (`lease_expires_at < now`), which only live sessions
have. Indexing every row made each claim and each ending move the row's entry to and from
NULL; the partial index takes one insert at the claim and one delete at the ending.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_LEASED = sa.text("lease_expires_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_sessions_lease_expiry", table_name="sessions")
    op.create_index(
        "ix_sessions_live_lease",
        "sessions",
        ["lease_expires_at"],
        sqlite_where=_LEASED,
        postgresql_where=_LEASED,
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_live_lease", table_name="sessions")
    op.create_index("ix_sessions_lease_expiry", "sessions", ["lease_expires_at"])
