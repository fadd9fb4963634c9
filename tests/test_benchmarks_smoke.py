"""The benchmark harness's smoke mode runs end to end, so the harness cannot rot.

No timing is asserted: only that one `python -m benchmarks.run --smoke` produces a
well-formed results JSON with every registered workload present (measured, or skipped with
a reason), plus the markdown table and the PNG plot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import _require_postgres

ROOT = Path(__file__).resolve().parent.parent


def _require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/13", socket_timeout=5).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis at 127.0.0.1:6379 is unreachable in CI: {exc}")
        pytest.skip(f"Redis unreachable: {exc}")


def test_smoke_run_writes_every_workload(tmp_path: Path) -> None:
    _require_postgres()
    _require_redis()
    from benchmarks.run import WORKLOADS

    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr

    results = json.loads((tmp_path / "benchmarks.json").read_text())
    assert results["config"]["smoke"] is True
    assert results["machine"]["cpus"] >= 1
    assert set(results["workloads"]) == {w.name for w in WORKLOADS}
    for name, entry in results["workloads"].items():
        if entry["skipped"]:
            assert isinstance(entry["skipped"], str) and entry["skipped"], name
            continue
        errors = [r["error"] for r in entry["runs"] if "error" in r]
        assert not errors, f"{name}: {errors}\n{proc.stderr}"
        assert len(entry["runs"]) == 1, name
        metrics = entry["median"]
        if entry["kind"] == "dispatch":
            assert metrics["processed"] == results["config"]["jobs"], name
            expected = {"drain_jobs_per_s", "latency_p50_ms", "latency_p99_ms"}
        elif entry["kind"] == "ceiling":
            expected = {"requests_per_s"}
        elif entry["kind"] == "ingest":
            phases = ("af", "vf1", "vf20", "vf100")
            expected = {f"{p}_{m}" for p in phases for m in ("events_per_s", "p99_ms")}
            expected |= {f"ceiling_{p}_events_per_s" for p in phases}
        elif entry["kind"] == "fanout":
            expected = {"deliveries_per_s", "p50_ms", "p99_ms", "server_cpu_percent"}
        elif entry["kind"] == "managed":
            expected = {"rounds", "p50_ms", "p99_ms", "reply_p50_ms", "reply_p99_ms"}
        else:
            expected = {"server_cpu_percent", "server_rss_mb", "latency_p99_ms"}
        assert expected <= set(metrics), (name, metrics)
        assert all(metrics[k] > 0 for k in expected), (name, metrics)

    # Until the environment work API is merged, its slot is skipped for exactly that reason.
    envapi = results["workloads"]["shopfloor-envapi-sqlite"]
    if envapi["skipped"]:
        assert "environment work API" in envapi["skipped"]

    table = (tmp_path / "benchmarks.md").read_text()
    assert "SMOKE RUN" in table
    for w in WORKLOADS:
        if w.kind != "ceiling":
            assert w.label in table, w.label
    assert (tmp_path / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Event ingestion" in table
    assert "## Fan-out to live watchers" in table
    assert "## Managed-session tool round trip" in table
    assert (tmp_path / "benchmarks-ingest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
