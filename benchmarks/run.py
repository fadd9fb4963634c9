"""Run every workload, `--runs` times, interleaved; write the results JSON, docs table and plot.

    python -m benchmarks.run              # full: N=10,000, K=32, 3 runs -> docs/benchmarks.*
    python -m benchmarks.run --smoke      # tiny N, 1 run, into --out-dir (what CI runs)

Each workload is one entry in WORKLOADS: a name, a kind (dispatch, ceiling, idle), a label
for the table, and an async function (Config, work dir) -> metrics dict. A function raises
Skip(reason) when it cannot run here; any other error is recorded for that run and the
other workloads go on."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import (
    ceiling,
    event_ingest,
    fanout,
    idle_envapi,
    idle_workers,
    managed_roundtrip,
    peers_pgqueuer,
    peers_procrastinate,
    peers_saq,
    shopfloor_af,
    shopfloor_envapi,
)
from benchmarks.common import ROOT, Config, Skip, raise_fd_limit
from benchmarks.machine import describe_machine

Runner = Callable[[Config, Path], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # "dispatch" | "ceiling" | "idle" | "ingest" | "fanout" | "managed"
    label: str
    system: str  # "shopfloor" or the peer's name: the table compares shopfloor to peers
    run: Runner


def _on(backend: str, fn: Callable[[Config, str, Path], Awaitable[dict[str, Any]]]) -> Runner:
    return lambda cfg, d: fn(cfg, backend, d)


WORKLOADS: list[Workload] = [
    Workload("shopfloor-af-sqlite", "dispatch", "shopfloor, AgentFactory protocol, SQLite",
             "shopfloor", _on("sqlite", shopfloor_af.run)),
    Workload("shopfloor-af-postgres", "dispatch", "shopfloor, AgentFactory protocol, Postgres",
             "shopfloor", _on("postgres", shopfloor_af.run)),
    # The same with session claims and ends kept out of the audit chain
    # (SHOPFLOOR_AUDIT_SESSIONS=false): the cost of auditing them, run side by side.
    Workload("shopfloor-af-sqlite-audit-off", "dispatch",
             "shopfloor, AgentFactory protocol, SQLite, session audit off", "shopfloor",
             lambda cfg, d: shopfloor_af.run(cfg, "sqlite", d, audit=False)),
    Workload("shopfloor-af-postgres-audit-off", "dispatch",
             "shopfloor, AgentFactory protocol, Postgres, session audit off", "shopfloor",
             lambda cfg, d: shopfloor_af.run(cfg, "postgres", d, audit=False)),
    # SLOT (issue 5): skipped with a reason until the environment work API is merged.
    Workload("shopfloor-envapi-sqlite", "dispatch", "shopfloor, environment work API, SQLite",
             "shopfloor", _on("sqlite", shopfloor_envapi.run)),
    Workload("shopfloor-envapi-postgres", "dispatch",
             "shopfloor, environment work API, Postgres", "shopfloor",
             _on("postgres", shopfloor_envapi.run)),
    Workload("pgqueuer", "dispatch", "PgQueuer (asyncpg), Postgres", "pgqueuer",
             peers_pgqueuer.run),
    Workload("procrastinate", "dispatch", "Procrastinate (psycopg 3), Postgres",
             "procrastinate", peers_procrastinate.run),
    Workload("saq", "dispatch", "SAQ, Redis", "saq", peers_saq.run),
    Workload("ceiling", "ceiling", "bare FastAPI/uvicorn JSON endpoint", "ceiling", ceiling.run),
    Workload("idle-af-sqlite", "idle", "idle AgentFactory fleet, SQLite", "shopfloor",
             _on("sqlite", idle_workers.run)),
    Workload("idle-af-postgres", "idle", "idle AgentFactory fleet, Postgres",
             "shopfloor", _on("postgres", idle_workers.run)),
    Workload("idle-envapi-sqlite", "idle", "idle environment-API fleet, long-polling, SQLite",
             "shopfloor", _on("sqlite", idle_envapi.run)),
    Workload("idle-envapi-postgres", "idle",
             "idle environment-API fleet, long-polling, Postgres", "shopfloor",
             _on("postgres", idle_envapi.run)),
    # The same fleet 3 and 10 times as large (3,000 and 10,000 workers at the default size);
    # the 10-times fleets load the whole machine: run them last, and alone (--only).
    Workload("idle-envapi-sqlite-x3", "idle",
             "idle environment-API fleet, long-polling, SQLite, 3 times the fleet", "shopfloor",
             lambda cfg, d: idle_envapi.run(cfg, "sqlite", d, scale=3)),
    Workload("idle-envapi-postgres-x3", "idle",
             "idle environment-API fleet, long-polling, Postgres, 3 times the fleet", "shopfloor",
             lambda cfg, d: idle_envapi.run(cfg, "postgres", d, scale=3)),
    Workload("idle-envapi-sqlite-x10", "idle",
             "idle environment-API fleet, long-polling, SQLite, 10 times the fleet", "shopfloor",
             lambda cfg, d: idle_envapi.run(cfg, "sqlite", d, scale=10)),
    Workload("idle-envapi-postgres-x10", "idle",
             "idle environment-API fleet, long-polling, Postgres, 10 times the fleet", "shopfloor",
             lambda cfg, d: idle_envapi.run(cfg, "postgres", d, scale=10)),
    Workload("ingest-sqlite", "ingest", "event ingestion, SQLite", "shopfloor",
             _on("sqlite", event_ingest.run)),
    Workload("ingest-postgres", "ingest", "event ingestion, Postgres", "shopfloor",
             _on("postgres", event_ingest.run)),
    Workload("fanout-sqlite", "fanout", "SSE fan-out, SQLite", "shopfloor",
             _on("sqlite", fanout.run)),
    Workload("fanout-postgres", "fanout", "SSE fan-out, Postgres", "shopfloor",
             _on("postgres", fanout.run)),
    # Three server processes: the kernel spreads watchers and appends over them, so most
    # deliveries cross processes (LISTEN/NOTIFY); the share is measured (cross_process_share).
    Workload("fanout-postgres-3proc", "fanout", "SSE fan-out, Postgres, 3 server processes",
             "shopfloor", lambda cfg, d: fanout.run(cfg, "postgres", d, processes=3)),
    Workload("managed-sqlite", "managed", "managed-session tool round trip, SQLite",
             "shopfloor", _on("sqlite", managed_roundtrip.run)),
    Workload("managed-postgres", "managed", "managed-session tool round trip, Postgres",
             "shopfloor", _on("postgres", managed_roundtrip.run)),
]  # fmt: skip


def median_metrics(runs: list[dict[str, Any]]) -> dict[str, float]:
    ok = [r for r in runs if "error" not in r]
    keys = {k for r in ok for k, v in r.items() if isinstance(v, int | float)}
    return {
        k: statistics.median(vals)
        for k in sorted(keys)
        if (vals := [r[k] for r in ok if isinstance(r.get(k), int | float)])
    }


async def run_all(
    cfg: Config,
    work_root: Path,
    only: list[str] | None,
    after_round: Callable[[dict[str, Any]], None] = lambda _: None,
) -> dict[str, Any]:
    """Every chosen workload once per round, `cfg.runs` rounds; after each round the results
    so far go to `after_round`, so a long run that is stopped keeps its finished rounds."""
    chosen = [w for w in WORKLOADS if not only or w.name in only]
    results: dict[str, Any] = {
        w.name: {"label": w.label, "kind": w.kind, "system": w.system, "runs": [], "skipped": None}
        for w in chosen
    }
    for n in range(cfg.runs):
        for w in chosen:
            entry = results[w.name]
            if entry["skipped"]:
                continue
            started = time.perf_counter()
            print(f"[run {n + 1}/{cfg.runs}] {w.name} ...", end=" ", flush=True, file=sys.stderr)
            try:
                metrics = await w.run(cfg, work_root / w.name)
                entry["runs"].append(metrics)
                print(f"ok ({time.perf_counter() - started:.1f}s)", file=sys.stderr)
            except Skip as skip:
                entry["skipped"] = str(skip)
                print(f"skipped: {skip}", file=sys.stderr)
            except Exception as exc:
                entry["runs"].append({"error": f"{type(exc).__name__}: {exc}"})
                print(f"FAILED: {exc}", file=sys.stderr)
                traceback.print_exc(file=sys.stderr)
        for entry in results.values():
            entry["median"] = median_metrics(entry["runs"])
        after_round(results)
    return results


def carried_over(path: Path, only: list[str] | None) -> dict[str, Any]:
    """The workloads of an earlier results file that this run does not measure, each marked
    with when that run started, so that a partial run can rewrite the report whole."""
    earlier = json.loads(path.read_text())
    return {
        name: {**entry, "carried_from": entry.get("carried_from", earlier["started"])}
        for name, entry in earlier["workloads"].items()
        if only and name not in only and any(w.name == name for w in WORKLOADS)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny N, one run (for CI)")
    parser.add_argument("--runs", type=int, help="runs per workload (median reported)")
    parser.add_argument("--jobs", type=int, help="N: jobs enqueued and drained")
    parser.add_argument("--workers", type=int, help="K: concurrent workers")
    parser.add_argument("--idle-workers", type=int, help="workers in the idle-fleet workload")
    parser.add_argument("--only", nargs="*", help="workload names to run (default: all)")
    parser.add_argument("--out-dir", type=Path, help="where results.json, .md and .png go")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="JSON",
        help="with --only: carry the other workloads over from this earlier results JSON "
        "(each marked with the run it comes from)",
    )
    parser.add_argument(
        "--report-only", type=Path, metavar="JSON", help="only re-render .md and .png from JSON"
    )
    args = parser.parse_args(argv)
    if args.report_only:
        from benchmarks.report import write_report

        out = args.out_dir or args.report_only.parent
        out.mkdir(parents=True, exist_ok=True)
        results = json.loads(args.report_only.read_text())
        write_report(results, out / "benchmarks.md", out / "benchmarks.png")
        return 0

    raise_fd_limit()  # the server and the load processes inherit it
    cfg = Config.smoke_config() if args.smoke else Config()
    overrides = {
        "runs": args.runs,
        "jobs": args.jobs,
        "workers": args.workers,
        "idle_workers": args.idle_workers,
    }
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    out_dir = args.out_dir or (Path(tempfile.mkdtemp()) if args.smoke else ROOT / "docs")
    out_dir.mkdir(parents=True, exist_ok=True)

    from benchmarks.report import write_report

    machine = asyncio.run(describe_machine())
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    kept = carried_over(args.keep, args.only) if args.keep else {}

    def write(workloads: dict[str, Any]) -> None:
        workloads = {**kept, **workloads}
        results = {
            "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": cfg.as_dict(),
            "rounds_done": max((len(e["runs"]) for e in workloads.values()), default=0),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "machine": machine,
            "workloads": workloads,
        }
        json_path = out_dir / "benchmarks.json"
        json_path.write_text(json.dumps(results, indent=2) + "\n")
        write_report(results, out_dir / "benchmarks.md", out_dir / "benchmarks.png")
        print(f"wrote {json_path}, benchmarks.md and benchmarks.png", file=sys.stderr)

    work_root = Path(tempfile.mkdtemp(prefix="shopfloor-bench-"))
    try:
        asyncio.run(run_all(cfg, work_root, args.only, write))
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
