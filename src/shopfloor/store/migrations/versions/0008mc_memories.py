"""memories: what agents remember through their MCP endpoint (af_memory_remember), per
organisation and project, with a full-text index for af_memory_recall: an FTS5 table beside
it on SQLite (porter stemming), a generated tsvector column with a GIN index on PostgreSQL.

Revision ID: 0008mc_memories
Revises: 0008wh_webhooks_audit
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008mc_memories"
down_revision = "0008wh_webhooks_audit"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "memories",
        sa.Column("id", sa.String(160), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(200)),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_memories_tenant", "memories", ["org_id", "project", "created_at"])
    if op.get_bind().dialect.name == "postgresql":
        # Words split at every non-alphanumeric, as SQLite's tokenizer does: the english
        # parser would keep `ops/deploy.sh` or `a.b` as one token that no query word matches.
        op.execute(
            "ALTER TABLE memories ADD COLUMN search tsvector GENERATED ALWAYS AS "
            "(to_tsvector('english', regexp_replace(content, '[^[:alnum:]]+', ' ', 'g'))) STORED"
        )
        op.execute("CREATE INDEX ix_memories_search ON memories USING GIN (search)")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE memories_fts USING fts5("
            "memory_id UNINDEXED, content, tokenize='porter unicode61')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE memories_fts")
    op.drop_table("memories")
