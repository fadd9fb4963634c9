"""Queue minutes: per queue and minute, the sessions handed to workers and how long they had
waited (the console's queue charts), written in batches by each server process.

Revision ID: 0009c2_queue_minutes
Revises: 0008pl_daemon_mutations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009c2_queue_minutes"
down_revision = "0009au2_audit_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_minutes",
        sa.Column("minute", sa.BigInteger, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("claims", sa.BigInteger, nullable=False),
        sa.Column("wait_ms_sum", sa.BigInteger, nullable=False),
        sa.Column("wait_ms_max", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("minute", "org_id", "queue", "project"),
    )


def downgrade() -> None:
    op.drop_table("queue_minutes")
