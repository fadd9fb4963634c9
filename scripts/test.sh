#!/usr/bin/env bash
# Set up everything the suite needs, then run it: ruff, mypy --strict, pytest.
# Tests use real SQLite files and the PostgreSQL at 127.0.0.1:5432 (database `test`);
# with CI=true an unreachable PostgreSQL fails the run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e ".[test,bench]"
# The managed-session tests also run the EnvironmentWorker of the newest `anthropic` SDK
# (the suite's own virtualenv pins the older 2.12.0), as a subprocess from a second
# virtualenv that holds only that SDK.
[ -x .venv-sdk-latest/bin/python ] || python3 -m venv .venv-sdk-latest
.venv-sdk-latest/bin/pip install --quiet --upgrade pip
.venv-sdk-latest/bin/pip install --quiet "anthropic==2.17.0"
# The Veryfront interop tests drive the server with the real npm client, pinned by the
# committed lockfile. Reinstall only when the lockfile changed; without node the interop
# tests fail (CI has node) unless SHOPFLOOR_SKIP_NODE_INTEROP=1.
if command -v npm >/dev/null 2>&1; then
  stamp=interop/veryfront/node_modules/.shopfloor-lock
  if ! cmp -s interop/veryfront/package-lock.json "$stamp"; then
    npm ci --prefix interop/veryfront --no-audit --no-fund --loglevel=error
    cp interop/veryfront/package-lock.json "$stamp"
  fi
fi
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/pytest "$@"
