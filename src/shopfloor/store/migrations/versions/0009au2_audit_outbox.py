"""The audit outbox: session claims and ends written by a trigger in the transaction of the
status change, appended to the organisation's audit chain later by the audit appender.

Revision ID: 0009au2_audit_outbox
Revises: 0008pl_daemon_mutations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shopfloor.store import audit_triggers

revision = "0009au2_audit_outbox"
down_revision = "0008pl_daemon_mutations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("worker_id", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("lease_epoch", sa.BigInteger, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_audit_outbox_org", "audit_outbox", ["org_id", "id"])
    for statement in audit_triggers.create_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in audit_triggers.drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table("audit_outbox")
