"""Benchmark harness: shopfloor against peer queues and the machine's HTTP ceiling.

Run everything with `scripts/bench.sh` (or `python -m benchmarks.run`); `--smoke` is the
tiny one-run variant the test suite uses. See docs/benchmarks.md for what is measured."""
