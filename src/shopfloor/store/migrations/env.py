"""Alembic environment. The store hands in an open connection; nothing here reads alembic.ini."""

from __future__ import annotations

from alembic import context

from shopfloor.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
