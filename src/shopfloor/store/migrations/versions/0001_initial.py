"""Initial schema: settings, registration tokens, workers, sessions, session events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "registration_tokens",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("project", sa.String(200)),
        sa.Column("org", sa.String(200)),
        sa.Column("label", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("protocol", sa.String(32), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("registered_at", sa.BigInteger, nullable=False),
        sa.Column("last_heartbeat_at", sa.BigInteger, nullable=False),
        sa.Column("active_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("version", sa.String(64)),
        sa.Column("projects", JSONType),
        sa.Column("registration_id", sa.String(64)),
        sa.Column("machine_id", sa.String(255)),
        sa.Column("ended_at", sa.BigInteger),
        sa.Column("metadata", JSONType, nullable=False),
    )
    op.create_index("ix_workers_liveness", "workers", ["status", "last_heartbeat_at"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("queued_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("lease_epoch", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("worker_id", sa.String(64)),
        sa.Column("claimed_at", sa.BigInteger),
        sa.Column("lease_expires_at", sa.BigInteger),
        sa.Column("project", sa.String(200)),
        sa.Column("issue_id", sa.String(200)),
        sa.Column("issue_identifier", sa.String(200)),
        sa.Column("title", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("prompt", sa.Text),
        sa.Column("work_type", sa.String(64)),
        sa.Column("repository", sa.Text),
        sa.Column("agent_id", sa.String(200)),
        sa.Column("provider_session_id", sa.String(200)),
        sa.Column("worktree_path", sa.Text),
        sa.Column("total_cost_usd", sa.Float),
        sa.Column("input_tokens", sa.BigInteger),
        sa.Column("output_tokens", sa.BigInteger),
        sa.Column("error_message", sa.Text),
        sa.Column("stop_requested_at", sa.BigInteger),
        sa.Column("extra", JSONType, nullable=False),
    )
    op.create_index(
        "ix_sessions_claimable",
        "sessions",
        ["queue", "priority", "queued_at", "id"],
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_sessions_worker", "sessions", ["worker_id", "status"])
    op.create_index("ix_sessions_status", "sessions", ["status"])
    op.create_index("ix_sessions_lease_expiry", "sessions", ["lease_expires_at"])
    op.create_table(
        "session_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16)),
        sa.Column("worker_id", sa.String(64)),
        sa.Column("reason", sa.Text),
        sa.Column("data", JSONType, nullable=False),
    )
    op.create_index("ix_session_events_session", "session_events", ["session_id", "id"])


def downgrade() -> None:
    op.drop_table("session_events")
    op.drop_table("sessions")
    op.drop_table("workers")
    op.drop_table("registration_tokens")
    op.drop_table("settings")
