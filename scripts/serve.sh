#!/usr/bin/env bash
# Set up (first run only) and start shopfloor on its embedded SQLite default.
# Extra arguments go to `shopfloor serve`, e.g. scripts/serve.sh --port 9000
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/shopfloor ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e .
fi
exec .venv/bin/shopfloor serve "$@"
