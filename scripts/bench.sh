#!/usr/bin/env bash
# Benchmarks: set up the `bench` extra, run every workload (medians of 3 runs) and write
# docs/benchmarks.json, docs/benchmarks.md and docs/benchmarks.png.
#   scripts/bench.sh            full run (several minutes; run it on a quiet machine)
#   scripts/bench.sh --smoke    tiny one-run variant into a temporary folder (what CI runs)
# Needs the PostgreSQL at 127.0.0.1:5432 (database `test`, used to create scratch databases)
# and the Redis at 127.0.0.1:6379 (db 13). Other arguments go to `python -m benchmarks.run`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e ".[test,bench]"
PYTHONPATH=. exec .venv/bin/python -m benchmarks.run "$@"
