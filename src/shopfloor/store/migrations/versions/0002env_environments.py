"""Environments (projects of kind `environment`), work-item columns on sessions, queue pollers.

Revision ID: 0002env
Revises: 0002ch
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002env"
down_revision = "0002ch"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

_SESSION_COLUMNS = (
    ("delivered_to", sa.String(255)),
    ("delivered_at", sa.BigInteger()),
    ("started_at", sa.BigInteger()),
    ("last_heartbeat_at", sa.BigInteger()),
    ("lease_ttl_seconds", sa.Integer()),
    ("ended_at", sa.BigInteger()),
    ("metadata", JSONType),
)


def upgrade() -> None:
    for name, type_ in _SESSION_COLUMNS:
        op.add_column("sessions", sa.Column(name, type_))
    op.create_table(
        "projects",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("scope", sa.String(32)),
        sa.Column("archived_at", sa.BigInteger),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_projects_kind", "projects", ["kind", "id"])
    op.create_table(
        "queue_pollers",
        sa.Column("queue", sa.String(200), primary_key=True),
        sa.Column("worker_id", sa.String(255), primary_key=True),
        sa.Column("polled_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("queue_pollers")
    op.drop_table("projects")
    with op.batch_alter_table("sessions") as batch:
        for name, _type in reversed(_SESSION_COLUMNS):
            batch.drop_column(name)
