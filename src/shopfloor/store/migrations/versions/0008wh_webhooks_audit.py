"""Webhook deliveries, per-organisation webhook secrets (encrypted) and trigger rules, and
the audit log.

Revision ID: 0008wh_webhooks_audit
Revises: 0008pd_project_defaults
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008wh_webhooks_audit"
down_revision = "0008pd_project_defaults"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("delivery_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("body", JSONType, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("result", JSONType, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", sa.BigInteger),
        sa.Column("processed_at", sa.BigInteger),
        sa.UniqueConstraint("org_id", "provider", "delivery_id", name="uq_webhook_delivery"),
    )
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["status", "lease_expires_at"],
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "webhook_secrets",
        sa.Column("org_id", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("ciphertext", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "webhook_triggers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("prompt_template", sa.Text, nullable=False),
        sa.Column("match", JSONType, nullable=False),
        sa.Column("work_type", sa.String(64)),
        sa.Column("project", sa.String(200)),
        sa.Column("priority", sa.Integer),
        sa.Column("issue_template", sa.Text),
        sa.Column("cooldown_seconds", sa.Integer),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_webhook_triggers_org", "webhook_triggers", ["org_id", "provider", "event_type"]
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("sequence_number", sa.BigInteger, nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("actor_type", sa.String(32), nullable=False),
        sa.Column("entity_type", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("signing_key_id", sa.String(100), nullable=False),
        sa.Column("occurred_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("org_id", "sequence_number", name="uq_audit_sequence"),
    )
    op.create_index(
        "ix_audit_events_entity", "audit_events", ["org_id", "entity_id", "sequence_number"]
    )
    op.create_index(
        "ix_audit_events_type", "audit_events", ["org_id", "event_type", "sequence_number"]
    )


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("webhook_triggers")
    op.drop_table("webhook_secrets")
    op.drop_index("ix_webhook_deliveries_pending", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
