"""Daemon mutations: operator changes queued for one daemon host and delivered on its next
heartbeat (rensei-platform.md §1.9).

Revision ID: 0008pl_daemon_mutations
Revises: 0008pl_routing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008pl_daemon_mutations"
down_revision = "0008pl_routing"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "daemon_mutations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("op", sa.String(32), nullable=False),
        sa.Column("params", JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("delivered_at", sa.BigInteger),
        sa.Column("cancelled_at", sa.BigInteger),
    )
    op.create_index("ix_daemon_mutations_worker", "daemon_mutations", ["worker_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_daemon_mutations_worker", table_name="daemon_mutations")
    op.drop_table("daemon_mutations")
