"""Measure the claim statement on PostgreSQL with many finished sessions in the table.

    .venv/bin/python scripts/explain_claim.py [postgresql://127.0.0.1:5432/test] [1000000]

Fills a scratch schema with N completed and 5,000 pending sessions, then runs EXPLAIN ANALYZE
on the exact claim statement (inside a transaction that is rolled back) a few times and prints
the plan and the timings. The schema is dropped afterwards."""

from __future__ import annotations

import asyncio
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shopfloor.store import open_store
from shopfloor.store.sql import SqlStore
from tests.store.test_claim_plan import claim_sql, fill, sql_literal

RUNS = 7


async def main(url: str, finished: int) -> None:
    schema = f"explain_{uuid.uuid4().hex[:8]}"
    store = await open_store(url, schema=schema)
    assert isinstance(store, SqlStore)
    try:
        await fill(store, finished, 5_000)
        for projects in (None, ["p1", "p2"]):
            stmt = claim_sql(store, projects)
            compiled = stmt.compile(
                dialect=store.engine.dialect, compile_kwargs={"render_postcompile": True}
            )
            params = compiled.construct_params()
            values = ", ".join(sql_literal(params[n]) for n in compiled.positiontup or [])
            timings: list[float] = []
            plan: list[str] = []
            async with store.engine.connect() as conn:
                raw = await conn.get_raw_connection()
                pg = raw.driver_connection
                assert pg is not None
                await pg.execute(f"PREPARE claim_plan AS {compiled}")
                for _ in range(RUNS):
                    tx = pg.transaction()
                    await tx.start()
                    try:  # EXPLAIN ANALYZE really claims: roll it back
                        rows = await pg.fetch(
                            f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim_plan({values})"
                        )
                    finally:
                        await tx.rollback()
                    plan = [r[0] for r in rows]
                    timings.append(float(plan[-1].split(":")[1].split()[0]))  # Execution Time
                await pg.execute("DEALLOCATE claim_plan")
            print(f"--- {finished:,} finished + 5,000 pending rows, projects={projects}")
            print("\n".join(plan))
            print(f"execution time over {RUNS} runs: median {statistics.median(timings):.3f} ms,"
                  f" max {max(timings):.3f} ms")  # fmt: skip
    finally:
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        await store.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0] if args else "postgresql://127.0.0.1:5432/test",
            int(args[1]) if len(args) > 1 else 1_000_000,
        )
    )
