"""The work-item fields a project's sessions get unless they set their own (the agent a Go
daemon runs: resolvedProfile, modelProfile).

Revision ID: 0008pd_project_defaults
Revises: 0008gc_git_and_batch
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008pd_project_defaults"
down_revision = "0008gc_git_and_batch"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "project_defaults",
        sa.Column("org_id", sa.String(64), primary_key=True),
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("fields", JSONType, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("project_defaults")
