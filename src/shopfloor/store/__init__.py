"""Persistence: the store interface and its SQL implementation."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from shopfloor.store.base import Store
from shopfloor.store.sql import SqlStore


async def open_store(url: str, *, schema: str | None = None, migrate: bool = True) -> Store:
    """Open the store for `url` (creating a SQLite file's folder) and migrate it to head."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    store = SqlStore(url, schema=schema)
    if migrate:
        await store.migrate()
    return store


__all__ = ["SqlStore", "Store", "open_store"]
