"""managed_sessions.turn_id: the id of the turn a managed session is in, stamped on every
event of that turn (Qoder's agent SDK follows a turn's events by it).

Revision ID: 0006qm_managed_turn_id
Revises: 0005vf
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006qm_managed_turn_id"
down_revision = "0005vf"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("managed_sessions", sa.Column("turn_id", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("managed_sessions") as batch:
        batch.drop_column("turn_id")
