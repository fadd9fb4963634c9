"""Tenancy: organisations, API keys (registration tokens become keys of one table), M2M
clients, and the organisation of every session, worker and project.

- orgs, with the default organisation that everything made before it belongs to.
- api_keys replaces registration_tokens: each token becomes a `worker_registration` key of
  the organisation its `org` named (created as an organisation with that slug if need be,
  the default one if it named none), its project a one-item `projects` list.
- m2m_clients: OAuth 2.0 client_credentials clients.
- sessions, workers, projects and issue records get `org_id` (the default organisation for
  existing rows).

Revision ID: 0007
Revises: 0006qm_managed_turn_id
"""

from __future__ import annotations

import hashlib
import re
import time

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006qm_managed_turn_id"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
DEFAULT_ORG = "org_default"
WORKER_SCOPES = ["worker:register", "worker:poll", "worker:heartbeat", "worker:session"]


def upgrade() -> None:
    orgs = op.create_table(
        "orgs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("slug", sa.String(100), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    keys = op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("key_type", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("projects", JSONType),
        sa.Column("scopes", JSONType, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("revoked_at", sa.BigInteger),
    )
    op.create_index("ix_api_keys_org", "api_keys", ["org_id", "id"])
    op.create_table(
        "m2m_clients",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", JSONType, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
    )
    op.create_index("ix_m2m_clients_org", "m2m_clients", ["org_id", "id"])
    for table in ("sessions", "workers", "projects", "issues"):
        op.add_column(
            table,
            sa.Column("org_id", sa.String(64), nullable=False, server_default=DEFAULT_ORG),
        )
    op.create_index("ix_sessions_org", "sessions", ["org_id", "id"])
    _move_registration_tokens(orgs, keys)
    op.drop_table("registration_tokens")


def _move_registration_tokens(orgs: sa.Table, keys: sa.Table) -> None:
    bind = op.get_bind()
    now = int(time.time() * 1000)
    bind.execute(
        orgs.insert().values(id=DEFAULT_ORG, slug="default", name="Default", created_at=now)
    )
    made = {None: DEFAULT_ORG}
    tokens = bind.execute(
        sa.text(
            "SELECT id, kind, token_hash, project, org, label, created_at, revoked_at "
            "FROM registration_tokens"
        )
    ).fetchall()
    for t in tokens:
        if t.org not in made:
            slug = _slug(t.org)
            org_id = "org_" + hashlib.sha256(slug.encode()).hexdigest()[:24]
            bind.execute(orgs.insert().values(id=org_id, slug=slug, name=t.org, created_at=now))
            made[t.org] = org_id
        bind.execute(
            keys.insert().values(
                id=t.id,
                org_id=made[t.org],
                key_type="worker_registration",
                token_hash=t.token_hash,
                key_prefix=f"{t.kind}_live_",
                name=t.label,
                projects=[t.project] if t.project else None,
                scopes=WORKER_SCOPES,
                created_at=t.created_at,
                revoked_at=t.revoked_at,
            )
        )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:100] or "org"


def downgrade() -> None:
    op.create_table(
        "registration_tokens",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("project", sa.String(200)),
        sa.Column("org", sa.String(200)),
        sa.Column("label", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
    )
    op.drop_index("ix_sessions_org", table_name="sessions")
    for table in ("issues", "projects", "workers", "sessions"):
        op.drop_column(table, "org_id")
    op.drop_table("m2m_clients")
    op.drop_table("api_keys")
    op.drop_table("orgs")
