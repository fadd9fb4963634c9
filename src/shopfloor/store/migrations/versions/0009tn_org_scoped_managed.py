"""Managed agents and Veryfront conversations belong to an organisation, like sessions and
environments already do.

- agents and conversations get `org_id` (the default organisation for existing rows; an
  agent made with a key limited to an environment takes that environment's organisation).
- a session queued in an environment of another organisation than the default one (a managed
  session, or an environment work item) takes the environment's organisation.

Revision ID: 0009tn_org_scoped_managed
Revises: 0008pl_daemon_mutations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009tn_org_scoped_managed"
down_revision = "0009c2_queue_minutes"
branch_labels = None
depends_on = None

DEFAULT_ORG = "org_default"


def upgrade() -> None:
    for table in ("agents", "conversations"):
        op.add_column(
            table,
            sa.Column("org_id", sa.String(64), nullable=False, server_default=DEFAULT_ORG),
        )
    op.create_index("ix_agents_org", "agents", ["org_id", "id"])
    op.execute(
        "UPDATE agents SET org_id = (SELECT p.org_id FROM projects p WHERE p.id = agents.project)"
        " WHERE project IN (SELECT id FROM projects)"
    )
    op.execute(
        "UPDATE sessions SET org_id = (SELECT p.org_id FROM projects p WHERE p.id = sessions.queue)"
        " WHERE queue IN (SELECT id FROM projects WHERE kind = 'environment'"
        f" AND org_id <> '{DEFAULT_ORG}')"
    )


def downgrade() -> None:
    op.drop_index("ix_agents_org", table_name="agents")
    for table in ("conversations", "agents"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("org_id")
