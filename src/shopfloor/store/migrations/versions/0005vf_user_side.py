"""Veryfront user side: canonical run fields, conversations, messages, input requests.

Revision ID: 0005vf
Revises: 0005ms_managed_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005vf"
down_revision = "0005ms_managed_sessions"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

_RUN_COLUMNS = (
    sa.Column("kind", sa.String(16), nullable=False, server_default="agent"),
    sa.Column("owner_kind", sa.String(16), nullable=False, server_default="conversation"),
    sa.Column("parent_run_id", sa.String(128)),
    sa.Column("root_run_id", sa.String(128)),
    sa.Column("spec", JSONType),
    sa.Column("output", JSONType),
    sa.Column("waiting_tool_call_id", sa.String(128)),
    sa.Column("waiting_tool_name", sa.String(128)),
    sa.Column("started_at", sa.BigInteger),
    sa.Column("completed_at", sa.BigInteger),
)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for column in _RUN_COLUMNS:
            batch.add_column(column)
    op.create_index("ix_runs_project_created", "runs", ["project_id", "created_at", "run_id"])
    op.create_index("ix_runs_conversation", "runs", ["conversation_id"])
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36)),
        sa.Column("project_name", sa.String(200)),
        sa.Column("title", sa.Text),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("metadata", JSONType),
        sa.Column("message_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", sa.BigInteger),
    )
    op.create_table(
        "conversation_messages",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("conversation_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parts", JSONType, nullable=False),
        sa.Column("metadata", JSONType),
        sa.Column("parent_id", sa.String(36)),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "uq_conversation_messages_seq",
        "conversation_messages",
        ["conversation_id", "seq"],
        unique=True,
    )
    op.create_index(
        "uq_conversation_messages_idempotency",
        "conversation_messages",
        ["conversation_id", "idempotency_key"],
        unique=True,
    )
    op.create_table(
        "input_requests",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("conversation_id", sa.String(36), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("tool_call_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_responder_type", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("fields", JSONType, nullable=False),
        sa.Column("metadata", JSONType),
        sa.Column("response", JSONType),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("submitted_at", sa.BigInteger),
        sa.Column("cancelled_at", sa.BigInteger),
        sa.Column("expired_at", sa.BigInteger),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_input_requests_conversation", "input_requests", ["conversation_id", "created_at"]
    )
    op.create_index(
        "uq_input_requests_tool_call", "input_requests", ["run_id", "tool_call_id"], unique=True
    )


def downgrade() -> None:
    op.drop_table("input_requests")
    op.drop_table("conversation_messages")
    op.drop_table("conversations")
    op.drop_index("ix_runs_conversation", table_name="runs")
    op.drop_index("ix_runs_project_created", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        for column in reversed(_RUN_COLUMNS):
            batch.drop_column(column.name)
