"""Prepared statements (store/db.py) give the same rows as SQLAlchemy's own execution of the
same statement, on every backend, JSON columns and NULLs included, inside the surrounding
transaction."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shopfloor.store import Store
from shopfloor.store.db import Prepared
from shopfloor.store.schema import sessions, settings
from shopfloor.store.sql import SqlStore
from shopfloor.store.sql_channel import _RELEASE_FILES
from tests.store.test_contract import add, session


def _sql_store(store: Store) -> SqlStore:
    assert isinstance(store, SqlStore)
    return store


async def test_rows_match_sqlalchemys(store: Store) -> None:
    extra = {"nested": {"list": [1, 2.5, None, "ü"]}, "flag": True}
    await add(store, session(id="sess_json", extra=extra, metadata={"k": "v"}, title=None))
    query = Prepared(sa.select(sessions).where(sessions.c.id == sa.bindparam("b_id")))
    async with _sql_store(store).db.connect() as conn:
        prepared = await conn.fetch(query, {"b_id": "sess_json"})
        plain = [
            dict(r._mapping) for r in await conn.execute(query.statement, {"b_id": "sess_json"})
        ]
    assert prepared == plain
    assert prepared[0]["extra"] == extra
    assert prepared[0]["title"] is None


async def test_writes_share_the_transaction_and_report_rowcounts(store: Store) -> None:
    await add(store, session(id="sess_a"), session(id="sess_b"))
    rename = Prepared(
        sessions.update()
        .where(sessions.c.id == sa.bindparam("b_id"))
        .values(title=sa.bindparam("v_title"))
    )
    db = _sql_store(store).db
    with pytest.raises(RuntimeError):
        async with db.begin() as conn:
            assert await conn.run(rename, {"b_id": "sess_a", "v_title": "kept?"}) == 1
            raise RuntimeError("roll back")
    async with db.begin() as conn:
        assert await conn.run(rename, {"b_id": "sess_b", "v_title": "kept"}) == 1
        assert await conn.run(_RELEASE_FILES, {"b_session": "sess_b"}) == 0
    assert (await store.get_session("sess_a")).title is None  # type: ignore[union-attr]
    assert (await store.get_session("sess_b")).title == "kept"  # type: ignore[union-attr]


async def test_a_savepoint_rolls_back_alone_and_a_failed_transaction_leaves_nothing(
    store: Store,
) -> None:
    """The transaction is ours (store/db.py): a failed savepoint undoes only its own writes,
    and a failed transaction none of its writes survive, on a pooled connection that goes
    back clean: more failures than the Postgres pool has connections, then a commit."""
    db = _sql_store(store).db
    put = Prepared(settings.insert().values(key=sa.bindparam("b_key"), value="v"))
    async with db.begin() as conn:
        await conn.run(put, {"b_key": "outer"})
        with pytest.raises(sa.exc.IntegrityError):
            async with conn.begin_nested():
                await conn.execute(settings.insert().values(key="inner", value="v"))
                await conn.execute(settings.insert().values(key="outer", value="again"))
        await conn.execute(settings.insert().values(key="after", value="v"))
    for n in range(25):
        with pytest.raises(RuntimeError):
            async with db.begin() as conn:
                await conn.run(put, {"b_key": f"lost{n}"})
                raise RuntimeError("roll back")
    async with db.begin() as conn:
        await conn.run(put, {"b_key": "last"})
    async with db.connect() as conn:
        keys = {row.key for row in await conn.execute(sa.select(settings.c.key))}
    assert {"outer", "after", "last"} <= keys
    assert not {k for k in keys if k == "inner" or k.startswith("lost")}
