"""An index of each organisation's sessions by issue, newest first, so that the Linear failure
backoff (service/issue_failures.py) reads an issue's last sessions without scanning the
organisation's. Partial: sessions without an issue (most of them) add no entry.

Revision ID: 0011fb_sessions_issue_index
Revises: 0010au3_audit_outbox_created
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011fb_sessions_issue_index"
down_revision = "0010au3_audit_outbox_created"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_sessions_issue",
        "sessions",
        ["org_id", "issue_id", "created_at"],
        sqlite_where=sa.text("issue_id IS NOT NULL"),
        postgresql_where=sa.text("issue_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_issue", table_name="sessions")
