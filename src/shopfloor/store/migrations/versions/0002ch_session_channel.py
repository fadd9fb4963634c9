"""Session channel: inbox messages, issue locks, file locks, issue records, recovery packets.

Revision ID: 0002ch
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002ch"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "inbox_messages",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("lane", sa.String(8), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("user_id", sa.String(200)),
        sa.Column("user_name", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("delivered_at", sa.BigInteger),
        sa.Column("delivery_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("acked_at", sa.BigInteger),
        sa.Column("archived_at", sa.BigInteger),
    )
    op.create_index("ix_inbox_messages_session", "inbox_messages", ["session_id", "created_at"])
    op.create_table(
        "issue_locks",
        sa.Column("issue_id", sa.String(200), primary_key=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("work_type", sa.String(64)),
        sa.Column("locked_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_issue_locks_expiry", "issue_locks", ["expires_at"])
    op.create_table(
        "file_locks",
        sa.Column("repo_id", sa.String(200), primary_key=True),
        sa.Column("path", sa.String(1000), primary_key=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("reserved_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text),
    )
    op.create_index("ix_file_locks_session", "file_locks", ["session_id"])
    op.create_table(
        "issues",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("identifier", sa.String(200), nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("state_name", sa.String(64)),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("parent_id", sa.String(200)),
        sa.Column("project", sa.String(200)),
        sa.Column("assignee", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_issues_identifier", "issues", ["identifier"])
    op.create_table(
        "recovery_packets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("data", JSONType, nullable=False),
    )
    op.create_index("ix_recovery_packets_session", "recovery_packets", ["session_id", "attempt"])


def downgrade() -> None:
    op.drop_table("recovery_packets")
    op.drop_table("issues")
    op.drop_table("file_locks")
    op.drop_table("issue_locks")
    op.drop_table("inbox_messages")
