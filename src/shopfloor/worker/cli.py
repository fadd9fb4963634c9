"""The `shopfloor worker` command."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer

from shopfloor.client import ApiError, WorkerProtocolClient
from shopfloor.worker import bootstrap
from shopfloor.worker.agents import AgentTable, parse_agent, parse_agent_for
from shopfloor.worker.daemon import Worker
from shopfloor.worker.settings import WorkerSettings


def worker(
    agent: Annotated[
        str,
        typer.Option(
            envvar="SHOPFLOOR_WORKER_AGENT",
            help="The agent to run: `claude`, `codex`, or a command line ({prompt}, "
            "{session_id}, {worktree}, {work_type}, {issue} are filled in; without {prompt} "
            "the prompt goes to stdin).",
        ),
    ],
    agent_for: Annotated[
        list[str] | None,
        typer.Option(
            "--agent-for", help="WORKTYPE=COMMAND: another agent for one work type; repeatable."
        ),
    ] = None,
    url: Annotated[
        str, typer.Option("--url", envvar="SHOPFLOOR_URL", help="Server base URL.")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar=["SHOPFLOOR_WORKER_KEY", "SHOPFLOOR_WORKER_API_KEY"],
            help="The server's static worker key or a registration token (rsk_live_/rsp_live_)."
            " Default: a registration token minted with the admin key found in --data-dir.",
        ),
    ] = None,
    capacity: Annotated[
        int,
        typer.Option(
            envvar="SHOPFLOOR_WORKER_CAPACITY", min=1, max=10_000, help="Sessions at once."
        ),
    ] = 3,
    projects: Annotated[
        str | None,
        typer.Option(
            envvar="SHOPFLOOR_WORKER_PROJECTS", help="Comma-separated projects to take work of."
        ),
    ] = None,
    work_dir: Annotated[
        Path,
        typer.Option(
            envvar="SHOPFLOOR_WORKER_DIR", help="Where session worktrees (and the token) go."
        ),
    ] = Path(".shopfloor/worker"),
    repo: Annotated[
        Path | None,
        typer.Option(
            envvar="SHOPFLOOR_WORKER_REPO",
            help="The git repository sessions work on (default: the current one; outside any, "
            "a scratch repository in the work dir).",
        ),
    ] = None,
    hostname: Annotated[str | None, typer.Option(help="Name to register under.")] = None,
    time_limit: Annotated[
        float,
        typer.Option(
            envvar="SHOPFLOOR_WORKER_TIME_LIMIT", min=1, help="Seconds a session may run."
        ),
    ] = 3600.0,
    stop_grace: Annotated[
        float,
        typer.Option(
            envvar="SHOPFLOOR_WORKER_STOP_GRACE",
            min=0,
            help="Seconds between SIGTERM and SIGKILL when an agent is stopped.",
        ),
    ] = 10.0,
    drain_timeout: Annotated[
        float,
        typer.Option(
            envvar="SHOPFLOOR_WORKER_DRAIN_TIMEOUT",
            min=0,
            help="On SIGTERM, seconds running sessions get to finish before they are handed back.",
        ),
    ] = 60.0,
    max_output_bytes: Annotated[
        int,
        typer.Option(
            envvar="SHOPFLOOR_WORKER_MAX_OUTPUT_BYTES",
            min=1024,
            help="An agent that writes more than this fails its session.",
        ),
    ] = 256 * 1024 * 1024,
    keep_worktrees: Annotated[
        bool, typer.Option("--keep-worktrees", help="Keep completed sessions' worktrees too.")
    ] = False,
    data_dir: Annotated[
        Path,
        typer.Option(
            envvar="SHOPFLOOR_DATA_DIR", help="Where to find the admin key (zero-config start)."
        ),
    ] = Path(".shopfloor"),
    admin_key: Annotated[
        str | None,
        typer.Option(envvar="SHOPFLOOR_ADMIN_API_KEY", help="Admin key (zero-config start)."),
    ] = None,
    log_level: Annotated[str, typer.Option(envvar="SHOPFLOOR_WORKER_LOG_LEVEL")] = "info",
) -> None:
    """Run agents for the server's sessions: an AgentFactory worker (register, heartbeat,
    poll, report) that runs each session's agent in its own git worktree. SIGTERM drains."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    host = hostname or socket.gethostname()
    try:
        agents = AgentTable(parse_agent(agent), parse_agent_for(agent_for or []))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--agent") from None
    settings = WorkerSettings(
        url=url,
        agents=agents,
        capacity=capacity,
        projects=tuple(p.strip() for p in (projects or "").split(",") if p.strip()),
        hostname=host,
        work_dir=work_dir,
        repo=repo,
        time_limit=time_limit,
        stop_grace=stop_grace,
        drain_timeout=drain_timeout,
        max_output_bytes=max_output_bytes,
        keep_worktrees=keep_worktrees,
    )

    def mint() -> str:
        return bootstrap.mint_token(url, admin_key, data_dir, work_dir, host)

    renew = None
    key = api_key
    try:
        if not key:
            key = bootstrap.cached_token(work_dir) or mint()
            renew = mint
    except (bootstrap.NoCredential, ApiError) as exc:
        typer.echo(f"shopfloor worker: {exc}", err=True)
        raise typer.Exit(2) from None
    except httpx.HTTPError as exc:  # the server is not there (yet)
        typer.echo(f"shopfloor worker: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(2) from None

    async def main() -> int:
        client = WorkerProtocolClient(url, key)
        return await Worker(settings, client, renew).run()

    raise typer.Exit(asyncio.run(main()))
