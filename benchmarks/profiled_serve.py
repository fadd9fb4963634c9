"""`shopfloor serve` in-process under cProfile, for benchmarks/poll_cpu.py's `--profile`:
the server's settings come from its SHOPFLOOR_* environment as `shopfloor serve` reads them;
PROFILE_OUT names the stats file, written once PROFILE_DELAY_S then PROFILE_SECONDS have
passed (the process is stopped by a signal, so the window must end before that)."""

from __future__ import annotations

import asyncio
import cProfile
import os
import sys

import uvicorn
import uvloop

from shopfloor.app import served_app
from shopfloor.config import Settings


async def profile_window(out: str, delay_s: float, seconds: float) -> None:
    await asyncio.sleep(delay_s)
    profiler = cProfile.Profile()
    profiler.enable()
    await asyncio.sleep(seconds)
    profiler.disable()
    profiler.dump_stats(out)
    print(f"profile written to {out}", file=sys.stderr, flush=True)


async def main(port: int) -> None:
    settings = Settings.from_env()
    config = uvicorn.Config(
        served_app(settings),
        host="127.0.0.1",
        port=port,
        loop="none",
        http="httptools",
        log_level="warning",
    )
    window = asyncio.create_task(
        profile_window(
            os.environ["PROFILE_OUT"],
            float(os.environ.get("PROFILE_DELAY_S", "5")),
            float(os.environ.get("PROFILE_SECONDS", "10")),
        )
    )
    await uvicorn.Server(config).serve()
    window.cancel()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
