"""CPU per audit entry, in-process, by part: what appending a session claim or end costs the
server process (`time.process_time`, robust to other processes' load on a shared machine).

    python -m benchmarks.audit_cpu [--backend sqlite|postgres] [--entries N] [--profile]
    python -m benchmarks.audit_cpu --compare [--backend ...]   # only the version-agnostic parts

Parts: the entry's own computation (canonical JSON, SHA-256, Ed25519, the record), measured
alone over the same entries; the appender's whole pass over an outbox of N facts (the
outbox read and delete, the head read, the insert, the computation); on SQLite also the
trigger's insert in the transaction of the status change (CPU of the UPDATE with the trigger
minus without). `--profile` prints the appender pass's cProfile, top 25 by own time.
`--compare` runs only what any version of the server has (the appender pass; session
creation through the dispatcher, with its audit entry, and the pass that chains what it left
in the outbox), so two trees can be compared: run it with each on PYTHONPATH, alternately."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import pstats
import sqlite3
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from shopfloor.clock import SystemClock
from shopfloor.service import audit, audit_chain
from shopfloor.service.audit_keys import AuditKeys
from shopfloor.service.audit_signer import Signer
from shopfloor.store import SqlStore, audit_triggers, open_store
from shopfloor.store import schema as t
from shopfloor.store.integration_records import AuditFact

PG_URL = "postgresql://127.0.0.1:5432/test"
ORGS = 4


def facts(n: int) -> list[dict[str, Any]]:
    return [
        {
            "org_id": f"org_{i % ORGS}",
            "session_id": f"ses_{uuid.uuid4().hex[:20]}",
            "event_type": "session.claimed" if i % 2 == 0 else "session.ended",
            "worker_id": f"wkr_{i % 32:04d}",
            "status": "claimed" if i % 2 == 0 else "completed",
            "queue": "default",
            "lease_epoch": 1,
            "at": 1_780_000_000_000 + i,
        }
        for i in range(n)
    ]


def per_entry_us(fn: Callable[[], object], n: int) -> float:
    started = time.process_time()
    fn()
    return 1e6 * (time.process_time() - started) / n


def compute_parts(log: audit.AuditLog, rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each part of the entry's computation alone, µs CPU per entry."""
    fs = [AuditFact(id=i, **r) for i, r in enumerate(rows)]
    kid, key = log.keys.signer("org_0")
    records = audit._fact_entries(fs, 1, "0" * 64, kid, key)
    digests = [hashlib.sha256(r.payload.encode()).digest() for r in records]
    n = len(rows)
    return {
        "payload text": per_entry_us(lambda: [audit._fact_payload_text(f) for f in fs], n),
        "entry ids": per_entry_us(lambda: audit._entry_ids(n), n),
        "seal (JCS x2, SHA-256 x2, sign)": per_entry_us(
            lambda: [audit_chain.seal(vars(r), key) for r in records], n
        ),
        "  of which Ed25519 sign": per_entry_us(lambda: [key.sign(d) for d in digests], n),
        "old: JCS of the event dict": per_entry_us(
            lambda: [audit_chain.canonical(audit_chain.event_of(r)) for r in records], n
        ),
        "whole build (_fact_entries)": per_entry_us(
            lambda: audit._fact_entries(fs, 1, "0" * 64, kid, key), n
        ),
    }


async def fill_outbox(store: SqlStore, rows: list[dict[str, Any]]) -> None:
    async with store.db.begin() as conn:
        await conn.execute(t.audit_outbox.insert(), rows)


async def appender_pass(
    store: SqlStore, log: audit.AuditLog, n: int, profile: bool
) -> tuple[float, int]:
    await fill_outbox(store, facts(n))
    profiler = cProfile.Profile() if profile else None
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    appended = await log.append_all_pending()
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - started
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 1e6 * cpu / max(appended, 1), appended


async def signed_elsewhere_pass(
    store: SqlStore, log: audit.AuditLog, n: int
) -> tuple[float, float]:
    """The appender pass with the signer process (the server's default): CPU per entry of
    this process and of the child."""
    log.signer = Signer()
    try:
        await appender_pass(store, log, 400, False)  # warm, and the child started
        assert log.signer._child is not None
        child = psutil.Process(log.signer._child.pid)
        before = sum(child.cpu_times()[:2])
        here, appended = await appender_pass(store, log, n, False)
        return here, 1e6 * (sum(child.cpu_times()[:2]) - before) / max(appended, 1)
    finally:
        await log.signer.close()
        log.signer = None


def trigger_us(n: int) -> tuple[float, float]:
    """CPU per status change on a bare SQLite sessions table, without and with the trigger."""

    def run(with_trigger: bool) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            db = sqlite3.connect(Path(tmp) / "t.db", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE sessions (id TEXT PRIMARY KEY, org_id TEXT, status TEXT, "
                "worker_id TEXT, delivered_to TEXT, queue TEXT, lease_epoch INT, updated_at INT)"
            )
            db.execute(
                "CREATE TABLE audit_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, org_id TEXT "
                "NOT NULL, session_id TEXT NOT NULL, event_type TEXT NOT NULL, worker_id TEXT, "
                "status TEXT NOT NULL, queue TEXT NOT NULL, lease_epoch INT NOT NULL, at INT "
                "NOT NULL)"
            )
            db.execute("CREATE INDEX ix_audit_outbox_org ON audit_outbox (org_id, id)")
            if with_trigger:
                for statement in audit_triggers.create_statements("sqlite"):
                    db.execute(statement)
            db.executemany(
                "INSERT INTO sessions VALUES (?, 'org_0', 'pending', NULL, NULL, 'q', 0, 0)",
                [(f"s{i}",) for i in range(n)],
            )
            started = time.process_time()
            for i in range(n):
                if i % 20 == 0:  # the server's group commit: several changes a COMMIT
                    db.execute("BEGIN")
                db.execute(
                    "UPDATE sessions SET status='claimed', worker_id='w', lease_epoch=1 WHERE id=?",
                    (f"s{i}",),
                )
                if i % 20 == 19:
                    db.execute("COMMIT")
            if db.in_transaction:
                db.execute("COMMIT")
            cpu = time.process_time() - started
            db.close()
            return 1e6 * cpu / n

    return run(False), run(True)


async def creation_us(store: SqlStore, log: audit.AuditLog, n: int) -> tuple[float, float]:
    """CPU per session created through the dispatcher (its audit entry included, whichever
    way it is written), and per session for the appender pass that chains what creation
    left in the outbox (none in versions that chain it on the request path)."""
    from shopfloor.service.dispatch import Dispatcher, NewSession

    dispatcher = Dispatcher(store, SystemClock(), worker_ttl_seconds=60)
    dispatcher.audit = log
    started = time.process_time()
    for i in range(n):
        await dispatcher.create_session(NewSession(prompt=f"p{i}"))
    created = time.process_time() - started
    started = time.process_time()
    await log.append_all_pending()
    return 1e6 * created / n, 1e6 * (time.process_time() - started) / n


@contextlib.asynccontextmanager
async def audit_log(backend: str) -> AsyncIterator[tuple[SqlStore, audit.AuditLog]]:
    """A fresh store (a temporary SQLite file, or a throwaway PostgreSQL schema) and an audit
    log over it with a new signing key; the schema is dropped afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        url = f"sqlite:///{tmp}/a.db"
        if backend == "postgres":
            url, schema = PG_URL, f"bench_{uuid.uuid4().hex[:10]}"
        store = await open_store(url, schema=schema)
        assert isinstance(store, SqlStore)
        try:
            keys = AuditKeys(Path(tmp) / "audit-keys.json")
            keys.load_or_create(0)
            yield store, audit.AuditLog(store, SystemClock(), keys)
        finally:
            if schema is not None:
                async with store.db.begin() as conn:
                    await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            await store.close()


async def compare(backend: str, entries: int) -> None:
    async with audit_log(backend) as (store, log):
        await appender_pass(store, log, 400, False)  # warm
        us, _ = await appender_pass(store, log, entries, False)
        create, chain = await creation_us(store, log, entries // 4)
        print(f"appender_pass_us={us:.1f} create_us={create:.1f} create_chain_us={chain:.1f}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--entries", type=int, default=4000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    if args.compare:
        await compare(args.backend, args.entries)
        return
    async with audit_log(args.backend) as (store, log):
        for part, us in compute_parts(log, facts(args.entries)).items():
            print(f"{part:32s} {us:8.1f} µs CPU/entry")
        await appender_pass(store, log, 400, False)  # warm
        us, appended = await appender_pass(store, log, args.entries, args.profile)
        print(f"{'appender pass (all parts)':32s} {us:8.1f} µs CPU/entry ({appended} entries)")
        here, child = await signed_elsewhere_pass(store, log, args.entries)
        print(f"{'  signed by the child: server':32s} {here:8.1f} µs CPU/entry")
        print(f"{'  signed by the child: child':32s} {child:8.1f} µs CPU/entry")
    if args.backend == "sqlite":
        off, on = trigger_us(args.entries)
        print(f"{'UPDATE status, no trigger':32s} {off:8.1f} µs CPU/change")
        print(f"{'UPDATE status, with trigger':32s} {on:8.1f} µs CPU/change")


if __name__ == "__main__":
    asyncio.run(main())
