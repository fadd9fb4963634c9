"""The public Sessions API's session id: `public_id`, the first 16 hex digits of the SHA-256
of the session id, stored so a `{id}` in /api/public/sessions/{id} is found by index. Existing
sessions get theirs here.

Revision ID: 0008pl_public_ids
Revises: 0008mc_a2a
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0008pl_public_ids"
down_revision = "0008mc_a2a"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    op.add_column("sessions", sa.Column("public_id", sa.String(16)))
    bind = op.get_bind()
    sessions = sa.table("sessions", sa.column("id", sa.String), sa.column("public_id", sa.String))
    ids = [r[0] for r in bind.execute(sa.select(sessions.c.id))]
    for start in range(0, len(ids), BATCH):
        bind.execute(
            sessions.update()
            .where(sessions.c.id == sa.bindparam("b_id"))
            .values(public_id=sa.bindparam("b_public")),
            [
                {"b_id": i, "b_public": hashlib.sha256(i.encode()).hexdigest()[:16]}
                for i in ids[start : start + BATCH]
            ],
        )
    op.create_index("ix_sessions_public_id", "sessions", ["public_id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_public_id", table_name="sessions")
    op.drop_column("sessions", "public_id")
