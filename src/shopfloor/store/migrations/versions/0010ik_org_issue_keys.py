"""Issue locks and issue records are keyed per organisation: two organisations may use the same
issue ids without one's session parking the other's, or their issue records colliding.

- issue_locks gets `org_id` (each existing lock takes its holder session's organisation) and
  the primary key (org_id, issue_id).
- issues (which has `org_id` since 0007) gets the primary key (org_id, id), and its identifier
  index leads with org_id.

Revision ID: 0010ik_org_issue_keys
Revises: 0009tn_org_scoped_managed
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010ik_org_issue_keys"
down_revision = "0009tn_org_scoped_managed"
branch_labels = None
depends_on = None

DEFAULT_ORG = "org_default"


def _set_primary_key(table: str, key: list[str]) -> None:
    """Make `key` the table's primary key. PostgreSQL drops its `<table>_pkey` and adds the
    new one in place. SQLite cannot alter a primary key: batch mode copies the table into a
    new one, the reflected table with `key` as its primary key."""
    if op.get_bind().dialect.name != "sqlite":
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"{table}_pkey", type_="primary")
            batch.create_primary_key(f"{table}_pkey", key)
        return
    old = sa.Table(table, sa.MetaData(), autoload_with=op.get_bind())
    columns = []
    for column in old.columns:
        copy = column._copy()
        copy.primary_key = False  # the key is the constraint below, in its column order
        columns.append(copy)
    new = sa.Table(table, sa.MetaData(), *columns, sa.PrimaryKeyConstraint(*key))
    for index in old.indexes:
        sa.Index(index.name, *(new.c[c.name] for c in index.columns))
    with op.batch_alter_table(table, recreate="always", copy_from=new):
        pass


def upgrade() -> None:
    op.add_column(
        "issue_locks",
        sa.Column("org_id", sa.String(64), nullable=False, server_default=DEFAULT_ORG),
    )
    op.execute(
        "UPDATE issue_locks SET org_id = (SELECT s.org_id FROM sessions s"
        " WHERE s.id = issue_locks.session_id)"
        " WHERE session_id IN (SELECT id FROM sessions)"
    )
    _set_primary_key("issue_locks", ["org_id", "issue_id"])
    _set_primary_key("issues", ["org_id", "id"])
    op.drop_index("ix_issues_identifier", table_name="issues")
    op.create_index("ix_issues_identifier", "issues", ["org_id", "identifier"])


def downgrade() -> None:
    # One issue id per server again: of rows sharing an id, the first organisation's stays.
    for table, key in (("issue_locks", "issue_id"), ("issues", "id")):
        op.execute(
            f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM {table} o"
            f" WHERE o.{key} = {table}.{key} AND o.org_id < {table}.org_id)"
        )
    op.drop_index("ix_issues_identifier", table_name="issues")
    op.create_index("ix_issues_identifier", "issues", ["identifier"])
    _set_primary_key("issues", ["id"])
    _set_primary_key("issue_locks", ["issue_id"])
    with op.batch_alter_table("issue_locks") as batch:
        batch.drop_column("org_id")
