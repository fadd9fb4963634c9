"""The A2A registry: remote agents an organisation registered by URL (their fetched cards),
and the dispatches made to them.

Revision ID: 0008mc_a2a
Revises: 0008mc_memories
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008mc_a2a"
down_revision = "0008mc_memories"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "a2a_agents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("slug", sa.String(200), nullable=False),
        sa.Column("trust_level", sa.String(16), nullable=False),
        sa.Column("card", JSONType, nullable=False),
        sa.Column("reachable", sa.Boolean, nullable=False),
        sa.Column("last_fetched_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("org_id", "url", name="uq_a2a_agents_org_url"),
    )
    op.create_table(
        "a2a_dispatches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("agent_name", sa.String(200), nullable=False),
        sa.Column("skill_id", sa.String(200), nullable=False),
        sa.Column("task_id", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dispatch_type", sa.String(16), nullable=False),
        sa.Column("session_id", sa.String(64)),
        sa.Column("input_text", sa.Text, nullable=False),
        sa.Column("output_text", sa.Text),
        sa.Column("dispatched_at", sa.BigInteger, nullable=False),
        sa.Column("completed_at", sa.BigInteger),
    )
    op.create_index("ix_a2a_dispatches_org", "a2a_dispatches", ["org_id", "id"])


def downgrade() -> None:
    op.drop_table("a2a_dispatches")
    op.drop_table("a2a_agents")
