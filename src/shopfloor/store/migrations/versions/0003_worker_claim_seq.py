"""workers.claim_seq: how many of the worker's polls have claimed sessions.

A Postgres poll claims in one statement, whose snapshot may predate a concurrent poll's
claims for the same worker; the counter on the (locked) worker row tells it so.

Revision ID: 0003
Revises: 0002vf
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002vf"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "workers", sa.Column("claim_seq", sa.BigInteger(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("workers", "claim_seq")
