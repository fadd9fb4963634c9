#!/usr/bin/env bash
# Set up everything the suite needs (the virtualenv, Chromium, the npm client), then run it:
# ruff, mypy --strict, pytest.
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
# The offline-docs browser test drives Debian's Chromium through the Python `playwright`
# package (from the test extra; never `playwright install`). A fresh machine has no
# browser: install it, as root (CI) or with a sudo that needs no password. In CI a missing
# browser fails that test; elsewhere it is skipped.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
  elif sudo -n true 2>/dev/null; then
    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
  else
    echo "scripts/test.sh: /usr/bin/chromium is missing and cannot be installed" \
      "without root: the browser tests will be skipped" >&2
  fi
fi
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
# Two pytest workers (SHOPFLOOR_TEST_WORKERS; 0 runs in this process): most tests wait on
# real servers, databases and clients rather than compute, so two overlap well on two cores.
# Whole files go to one worker (--dist loadfile), keeping a file's fixtures and order.
.venv/bin/pytest -n "${SHOPFLOOR_TEST_WORKERS:-2}" --dist loadfile "$@"
