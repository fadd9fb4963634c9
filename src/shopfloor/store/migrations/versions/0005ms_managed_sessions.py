"""Managed-agent sessions: agents (versioned) and the managed state of a session.

Revision ID: 0005ms_managed_sessions
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005ms_managed_sessions"
down_revision = "0005"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
_NOT_IDLE = sa.text("turn <> 'idle'")


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project", sa.String(200)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("archived_at", sa.BigInteger),
    )
    op.create_table(
        "agent_versions",
        sa.Column("agent_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("definition", JSONType, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "managed_sessions",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("environment_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(64)),
        sa.Column("agent_version", sa.Integer),
        sa.Column("agent", JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("resources", JSONType, nullable=False),
        sa.Column("usage", JSONType, nullable=False),
        sa.Column("turn", sa.String(8), nullable=False),
        sa.Column("pending", JSONType, nullable=False),
        sa.Column("unfed", JSONType, nullable=False),
        sa.Column("turn_owner", sa.String(64)),
        sa.Column("turn_epoch", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("turn_expires_at", sa.BigInteger),
        sa.Column("rev", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("archived_at", sa.BigInteger),
        sa.Column("deleted_at", sa.BigInteger),
    )
    op.create_index(
        "ix_managed_sessions_environment", "managed_sessions", ["environment_id", "session_id"]
    )
    op.create_index("ix_managed_sessions_agent", "managed_sessions", ["agent_id", "session_id"])
    op.create_index(
        "ix_managed_sessions_turn",
        "managed_sessions",
        ["turn", "turn_expires_at"],
        sqlite_where=_NOT_IDLE,
        postgresql_where=_NOT_IDLE,
    )


def downgrade() -> None:
    op.drop_table("managed_sessions")
    op.drop_table("agent_versions")
    op.drop_table("agents")
