"""Run the `anthropic` SDK's own EnvironmentWorker, unmodified, against a server.

Started as a subprocess by the end-to-end tests, with the interpreter of whichever SDK version
is under test (the suite's virtualenv holds the pinned one, .venv-sdk-latest the newest), so
this file imports nothing of shopfloor or of the tests.

usage: python sdk_worker.py BASE_URL ENVIRONMENT_ID ENVIRONMENT_KEY WORKDIR MAX_IDLE_SECONDS
"""

from __future__ import annotations

import asyncio
import logging
import sys

import anthropic
from anthropic.lib.environments import EnvironmentWorker


async def main() -> None:
    base_url, environment_id, key, workdir, max_idle = sys.argv[1:6]
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key=key)
    worker = EnvironmentWorker(
        client,
        environment_id=environment_id,
        environment_key=key,
        workdir=workdir,
        max_idle=float(max_idle),
    )
    print(f"sdk worker {anthropic.__version__} polling {environment_id}", flush=True)
    await worker.run()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s"
    )
    asyncio.run(main())
