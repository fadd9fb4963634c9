"""Sessions created, stopped and transferred go through the audit outbox too, each written in
the transaction of its action: the outbox gets the actor, a created session's issue id, and
the payload of a stop or transfer (canonical JSON); all null in the rows the claim and end
trigger writes, whose actor is the worker.

Revision ID: 0010au3_audit_outbox_created
Revises: 0010ik_org_issue_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010au3_audit_outbox_created"
down_revision = "0010ik_org_issue_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_outbox", sa.Column("actor_id", sa.String(200)))
    op.add_column("audit_outbox", sa.Column("actor_type", sa.String(32)))
    op.add_column("audit_outbox", sa.Column("issue_id", sa.String(200)))
    op.add_column("audit_outbox", sa.Column("payload", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("audit_outbox") as batch:
        batch.drop_column("payload")
        batch.drop_column("issue_id")
        batch.drop_column("actor_type")
        batch.drop_column("actor_id")
