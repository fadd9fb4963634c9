#!/usr/bin/env bash
# Set up everything the suite needs, then run it: ruff, mypy --strict, pytest.
# Tests use real SQLite files and the PostgreSQL at 127.0.0.1:5432 (database `test`);
# with CI=true an unreachable PostgreSQL fails the run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e ".[test,bench]"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/pytest "$@"
