"""A poll stays cheap however many finished sessions the table holds: the claim statement reads
only the partial index ix_sessions_claimable (status = 'pending'), never the whole table.

Measured timing at 1,000,000 finished rows is in the README (scripts/explain_claim.py)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from shopfloor.store import Store
from shopfloor.store.db import AsyncEngineDatabase, Prepared
from shopfloor.store.sql import (
    SqlStore,
    claim_statement,
    expired_leases_query,
    pg_poll_statement,
)
from tests.store.test_contract import worker

FINISHED = 200_000
PENDING_ROWS = 5_000


async def fill(store: SqlStore, finished: int, pending: int, analyze: bool = True) -> None:
    """`finished` completed sessions and `pending` queued ones, in one statement each."""
    columns = "id, queue, status, priority, queued_at, created_at, updated_at, lease_epoch, extra"
    async with store.db.begin() as conn:
        for prefix, status, count in (
            ("done", "completed", finished),
            ("todo", "pending", pending),
        ):
            rows = (
                f"SELECT 'sess_{prefix}_' || n, 'agentfactory', '{status}', 1 + n % 9, n, n, n, 1,"
                " '{}' FROM g"
            )
            if store.dialect == "postgresql":
                sql = f"INSERT INTO sessions ({columns}) " + rows.replace(
                    "'{}' FROM g", "'{}'::jsonb FROM generate_series(1, :count) AS g(n)"
                )
            else:
                sql = (
                    "WITH RECURSIVE g(n) AS "
                    "(SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :count) "
                    f"INSERT INTO sessions ({columns}) {rows}"
                )
            await conn.execute(sa.text(sql), {"count": count})
        if analyze:
            await conn.execute(
                sa.text("ANALYZE sessions" if store.dialect == "postgresql" else "ANALYZE")
            )


def claim_sql(
    store: SqlStore, projects: list[str] | None = None, stmt: Prepared | None = None
) -> tuple[str, tuple[Any, ...]]:
    """The claim statement (or `stmt`, which takes the same parameters) as the store sends
    it: SQL text and positional parameters."""
    stmt = stmt or claim_statement(store.dialect, 5, projects is not None)
    params: dict[str, Any] = {"b_queue": "agentfactory", "b_worker": "wkr_1", "b_now": 1}
    params["b_lease"] = 2
    if projects is not None:
        params["b_projects"] = projects
    state = stmt.statement.compile(dialect=store.db.dialect).construct_expanded_state(params)
    return state.statement, tuple(state.positional_parameters)


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [node]
    for child in node.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


def sql_literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def postgres_plan(
    store: SqlStore, claim: tuple[str, tuple[Any, ...]], plan_cache_mode: str
) -> list[dict[str, Any]]:
    """EXPLAIN the statement as a prepared statement with bound parameters, under
    `plan_cache_mode`: a generic plan is what a cached prepared statement may fall back to,
    and it cannot see the parameter values."""
    compiled, params = claim
    values = ", ".join(sql_literal(value) for value in params)
    assert isinstance(store.db, AsyncEngineDatabase)
    async with store.db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        pg = raw.driver_connection
        assert pg is not None
        await pg.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        await pg.execute(f"PREPARE claim_plan AS {compiled}")
        try:
            text = await pg.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE claim_plan({values})")
        finally:
            await pg.execute("DEALLOCATE claim_plan")
            await pg.execute("RESET plan_cache_mode")
    plan = json.loads(text) if isinstance(text, str) else text  # the engine decodes json
    return plan_nodes(plan[0]["Plan"])


async def sqlite_plan(store: SqlStore, claim: tuple[str, tuple[Any, ...]]) -> list[str]:
    compiled, positional = claim
    async with store.db.connect() as conn:
        rows = await conn.run_sync(
            lambda c: list(c.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", positional))
        )
        return [str(r[-1]) for r in rows]


def scans_of_sessions(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [n for n in nodes if n.get("Relation Name") == "sessions" and "Scan" in n["Node Type"]]


async def test_claim_reads_only_the_claimable_index(store: Store) -> None:
    assert isinstance(store, SqlStore)
    await fill(store, FINISHED, PENDING_ROWS)
    for projects in (None, ["p1", "p2"]):
        stmt = claim_sql(store, projects)
        if store.dialect == "postgresql":
            for mode in ("force_custom_plan", "force_generic_plan"):
                scans = scans_of_sessions(await postgres_plan(store, stmt, mode))
                assert scans and not [n for n in scans if "Seq" in n["Node Type"]], (mode, scans)
                # Every read of the table goes through an index that holds pending rows
                # only, or through the primary key; never through all 200,000 finished rows.
                for scan in scans:
                    cond = scan.get("Index Cond", "")
                    assert scan.get("Index Name") == "ix_sessions_claimable" or (
                        "'pending'" in cond or "picked.id" in cond
                    ), (mode, scan)
                if projects is None:  # the plain poll walks the queue head in index order
                    names = {n.get("Index Name") for n in scans}
                    assert "ix_sessions_claimable" in names, (mode, scans)
                # The update finds what it claims by primary key: a second read of the
                # claimable index would walk every pending row to find the few picked.
                claimable = [n for n in scans if n.get("Index Name") == "ix_sessions_claimable"]
                assert len(claimable) <= 1, (mode, scans)
        else:
            details = await sqlite_plan(store, stmt)
            assert any("USING INDEX ix_sessions_claimable" in d for d in details), details
            assert not any(d.startswith("SCAN sessions") for d in details), details
    claimed = await store.claim_next("agentfactory", "wkr_1", 5, now=1)
    assert len(claimed) == 5 and all(c.id.startswith("sess_todo_") for c in claimed)


async def test_claim_updates_by_primary_key_after_a_burst(store: Store) -> None:
    # The planner's statistics say what the table held when it was last analyzed: here, no
    # pending rows, then a burst of them arrives. The claim must still find the rows it updates
    # by primary key; a second read through an index on status would read every pending row
    # on every claim. (Its read of the queue head may go through ix_sessions_status then.)
    assert isinstance(store, SqlStore)
    if store.dialect != "postgresql":
        return  # SQLite's plan is checked above; it keeps no statistics to go stale
    await fill(store, FINISHED // 10, 0)
    await fill(store, 0, PENDING_ROWS, analyze=False)
    await store.insert_worker(worker(capacity=5))  # the one-statement poll's worker
    for stmt in (None, pg_poll_statement(5)):
        for mode in ("force_custom_plan", "force_generic_plan"):
            nodes = await postgres_plan(store, claim_sql(store, stmt=stmt), mode)
            scans = [n for n in scans_of_sessions(nodes) if "worker_id" not in str(n)]
            by_key = [n for n in scans if n.get("Index Name") == "sessions_pkey"]
            assert len(scans) == 2 and len(by_key) == 1, (stmt, mode, scans)


async def test_the_reaper_reads_only_leased_sessions(store: Store) -> None:
    """Its look-up of expired leases goes through ix_sessions_live_lease, which holds only
    sessions with a lease, never through the finished rows."""
    assert isinstance(store, SqlStore)
    await fill(store, FINISHED, PENDING_ROWS)
    query = expired_leases_query(now=10, limit=100)
    state = query.compile(dialect=store.db.dialect).construct_expanded_state({})
    stmt = (state.statement, tuple(state.positional_parameters))
    if store.dialect == "postgresql":
        for mode in ("force_custom_plan", "force_generic_plan"):
            scans = scans_of_sessions(await postgres_plan(store, stmt, mode))
            names = [n.get("Index Name") for n in scans]
            assert names == ["ix_sessions_live_lease"], (mode, scans)
    else:
        details = await sqlite_plan(store, stmt)
        assert any("USING INDEX ix_sessions_live_lease" in d for d in details), details
        assert not any(d.startswith("SCAN sessions") for d in details), details
