"""Repositories, the sources of their git credentials (secrets sealed outside the database's
reach, see service/secret_box.py) and batch work items.

Revision ID: 0008gc_git_and_batch
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008gc_git_and_batch"
down_revision = "0007"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "repositories",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("project", sa.String(200)),
        sa.Column("source_id", sa.String(64)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("uq_repositories_key", "repositories", ["org_id", "key"], unique=True)
    op.create_table(
        "git_sources",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("sealed_secret", sa.Text, nullable=False),
        sa.Column("org_default", sa.Boolean, nullable=False),
        sa.Column("app_id", sa.String(64)),
        sa.Column("installation_id", sa.String(64)),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("last_error", sa.String(500)),
        sa.Column("last_error_at", sa.BigInteger),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_git_sources_org", "git_sources", ["org_id", "id"])
    op.create_table(
        "batch_items",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("capability", sa.String(64), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("project", sa.String(200)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("worker_id", sa.String(64)),
        sa.Column("lease_epoch", sa.Integer, nullable=False),
        sa.Column("lease_expires_at", sa.BigInteger),
        sa.Column("result", JSONType),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger),
    )
    op.create_index(
        "ix_batch_items_queue", "batch_items", ["org_id", "capability", "status", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("batch_items")
    op.drop_table("git_sources")
    op.drop_table("repositories")
