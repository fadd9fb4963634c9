"""The credential vault: an organisation's secrets for agent environments, each stored
encrypted (AES-256-GCM with a key from a file outside the database, see
service/vault.py), for the whole organisation or one project, every environment or one.
`project` and `env_name` are '' for "all", so one unique index covers each scope.

Revision ID: 0008pl_credentials
Revises: 0008pl_public_ids
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008pl_credentials"
down_revision = "0008pl_public_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_credentials",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("env_name", sa.String(100), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("ciphertext", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "uq_org_credentials_scope",
        "org_credentials",
        ["org_id", "project", "env_name", "name"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_org_credentials_scope", table_name="org_credentials")
    op.drop_table("org_credentials")
