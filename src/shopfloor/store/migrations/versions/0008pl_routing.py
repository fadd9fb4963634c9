"""The provider router: Beta posteriors per (organisation, provider, work type) and the
observations (rewards) that moved them.

Revision ID: 0008pl_routing
Revises: 0008pl_credentials
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008pl_routing"
down_revision = "0008pl_credentials"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routing_posteriors",
        sa.Column("org_id", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("work_type", sa.String(64), primary_key=True),
        sa.Column("alpha", sa.Float, nullable=False),
        sa.Column("beta", sa.Float, nullable=False),
        sa.Column("total_observations", sa.BigInteger, nullable=False),
        sa.Column("avg_reward", sa.Float, nullable=False),
        sa.Column("avg_cost_usd", sa.Float, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "routing_observations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("work_type", sa.String(64), nullable=False),
        sa.Column("reward", sa.Float, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("project", sa.String(200)),
        sa.Column("task_completed", sa.Boolean),
        sa.Column("pr_created", sa.Boolean),
        sa.Column("qa_result", sa.String(16)),
        sa.Column("cost_usd", sa.Float),
        sa.Column("wall_clock_ms", sa.BigInteger),
        sa.Column("confidence", sa.Float),
        sa.Column("exploration_reason", sa.String(64)),
    )
    op.create_index("ix_routing_observations_org", "routing_observations", ["org_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_routing_observations_org", table_name="routing_observations")
    op.drop_table("routing_observations")
    op.drop_table("routing_posteriors")
