"""Veryfront agent-workers: worker details, runs, run events, worker sessions.

Revision ID: 0002vf
Revises: 0002env
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002vf"
down_revision = "0002env"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "agent_workers",
        sa.Column("worker_id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(36), nullable=False),
        sa.Column("project_name", sa.String(200), nullable=False),
        sa.Column("implementation_kind", sa.String(64), nullable=False),
        sa.Column("worker_key", sa.String(128), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("implementation_display_name", sa.String(128)),
        sa.Column("display_name", sa.String(128)),
        sa.Column("metadata", JSONType),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "uq_agent_workers_key",
        "agent_workers",
        ["project_id", "implementation_kind", "worker_key"],
        unique=True,
    )
    op.create_index("uq_agent_workers_token", "agent_workers", ["token_hash"], unique=True)
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(36), nullable=False),
        sa.Column("conversation_id", sa.String(36), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("agent_id", sa.String(200), nullable=False),
        sa.Column("implementation_kind", sa.String(64), nullable=False),
        sa.Column("worker_key", sa.String(128)),
        sa.Column("request_snapshot", JSONType),
        sa.Column("latest_event_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column(
            "latest_external_event_sequence", sa.BigInteger, nullable=False, server_default="0"
        ),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("terminal_error_code", sa.String(200)),
        sa.Column("terminal_error_message", sa.Text),
        sa.Column("completion_metadata", JSONType),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("uq_runs_session", "runs", ["session_id"], unique=True)
    op.create_index("uq_runs_idempotency", "runs", ["project_id", "idempotency_key"], unique=True)
    op.create_table(
        "run_events",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_table(
        "run_worker_sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("implementation_kind", sa.String(64), nullable=False),
        sa.Column("session_key", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metadata", JSONType),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("ended_at", sa.BigInteger),
    )
    op.create_index(
        "uq_run_worker_sessions_run_worker",
        "run_worker_sessions",
        ["run_id", "worker_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("run_worker_sessions")
    op.drop_table("run_events")
    op.drop_table("runs")
    op.drop_table("agent_workers")
