"""Persistence: the store interface and its SQL implementation."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from shopfloor.store.base import Store
from shopfloor.store.sql import SqlStore


async def open_store(url: str, *, schema: str | None = None, migrate: bool = True) -> Store:
    """Open the store for `url` and migrate it to head. A SQLite file is readable by its
    owner only (0600; SQLite gives its -wal and -shm files the same mode), in a folder
    created 0700 if missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _private_file(Path(parsed.database))
    store = SqlStore(url, schema=schema)
    if migrate:
        await store.migrate()
    return store


def _private_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    stat = path.stat()
    if stat.st_mode & 0o077 and stat.st_uid == os.getuid():
        path.chmod(0o600)


__all__ = ["SqlStore", "Store", "open_store"]
