"""The `shopfloor` command: serve, and operate a running server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shopfloor.cli.audit import audit_app
from shopfloor.cli.chat import follow_turn
from shopfloor.cli.follow import follow_run, follow_timeline
from shopfloor.cli.git import batch_app, git_sources_app, repos_app
from shopfloor.cli.options import (
    AdminKey,
    DatabaseUrl,
    DataDir,
    SigningKeyFile,
    Url,
    console,
    operator,
)
from shopfloor.cli.tenancy import keys_app, m2m_app, orgs_app
from shopfloor.config import Settings
from shopfloor.worker.cli import worker

app = typer.Typer(
    help="shopfloor: a self-hosted dispatch server for AI-agent workers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
sessions_app = typer.Typer(help="Create and inspect sessions.", no_args_is_help=True)
workers_app = typer.Typer(help="Inspect workers.", no_args_is_help=True)
credentials_app = typer.Typer(
    help="An organisation's credential vault (values are write-only).", no_args_is_help=True
)
router_app = typer.Typer(help="The provider router.", no_args_is_help=True)
tokens_app = typer.Typer(
    help="Registration tokens (rsk_live_/rsp_live_) for workers.", no_args_is_help=True
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
environments_app = typer.Typer(
    help="Self-hosted environments of the environment work API.", no_args_is_help=True
)
signing_key_app = typer.Typer(
    help="The keys that sign runtime JWTs (a file outside the database).", no_args_is_help=True
)
runs_app = typer.Typer(
    help="Veryfront runs for agent-workers (claimed by implementation kind and worker key).",
    no_args_is_help=True,
)
app.add_typer(sessions_app, name="sessions")
app.add_typer(workers_app, name="workers")
app.add_typer(tokens_app, name="tokens")
app.add_typer(credentials_app, name="credentials")
app.add_typer(router_app, name="router")
app.add_typer(db_app, name="db")
app.add_typer(environments_app, name="environments")
agents_app = typer.Typer(
    help="Agents of managed sessions (a model, a system prompt, tools).", no_args_is_help=True
)
app.add_typer(runs_app, name="runs")
app.add_typer(signing_key_app, name="signing-key")
app.add_typer(agents_app, name="agents")
app.add_typer(repos_app, name="repos")
app.add_typer(git_sources_app, name="git-sources")
app.add_typer(batch_app, name="batch")
app.add_typer(audit_app, name="audit")
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(m2m_app, name="m2m")
app.command("worker")(worker)

# At a shutdown, responses still open after this long are cancelled: a session's event
# stream stays open as long as its client listens.
GRACEFUL_SHUTDOWN_SECONDS = 5
# Connections the kernel queues for accept() (uvicorn's default: 2,048). A fleet of 10,000
# workers reconnecting after a restart arrives within a second; the kernel caps the number
# at net.core.somaxconn (4,096 on current Linux).
LISTEN_BACKLOG = 8192


@agents_app.command("create")
def agents_create(
    name: Annotated[str, typer.Option(help="Agent name.")],
    model: Annotated[str, typer.Option(help="Model name sent to the Messages API.")],
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    tools: Annotated[
        bool,
        typer.Option(help="Give it the worker's tools (bash, read, write, edit, glob, grep)."),
    ] = True,
    ask: Annotated[
        bool, typer.Option("--ask", help="Every tool call waits for a confirmation.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Create an agent for managed sessions."""
    body: dict[str, Any] = {"name": name, "model": model, "system": system, "tools": []}
    if tools:
        toolset: dict[str, Any] = {"type": "agent_toolset_20260401"}
        if ask:
            toolset["default_config"] = {"permission_policy": {"type": "always_ask"}}
        body["tools"] = [toolset]
    with operator(url, admin_key, data_dir) as client:
        agent = client.create_agent(body)
    if as_json:
        print(json.dumps(agent, indent=2))
        return
    console.print(f"{agent['id']}  {agent['name']}  v{agent['version']}  {agent['model']['id']}")


@agents_app.command("list")
def agents_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """List agents (their current versions)."""
    with operator(url, admin_key, data_dir) as client:
        agents = client.list_agents()
    if as_json:
        print(json.dumps(agents, indent=2))
        return
    table = Table("id", "name", "version", "model", "tools", "updated")
    for a in agents:
        kinds = ", ".join(t["type"] for t in a["tools"]) or "-"
        table.add_row(
            a["id"], a["name"], str(a["version"]), a["model"]["id"], kinds, a["updated_at"]
        )
    console.print(table)


@app.command()
def chat(
    message: Annotated[str, typer.Argument(help="What to say to the agent.")],
    agent: Annotated[str | None, typer.Option(help="Start a new session with this agent.")] = None,
    environment: Annotated[
        str | None, typer.Option(help="The environment whose workers run the new session.")
    ] = None,
    session: Annotated[
        str | None, typer.Option(help="Talk to this existing session instead.")
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Give up if no event arrives for this many seconds.")
    ] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print events as JSON lines.")] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Send a message to a managed session (a new one with --agent and --environment) and
    follow its events live until the agent's turn ends."""
    if (session is None) == (agent is None or environment is None):
        console.print("[red]give either --session, or --agent and --environment[/]")
        raise typer.Exit(2)
    with operator(url, admin_key, data_dir) as client:
        if session is None:
            assert agent is not None and environment is not None
            session = client.create_managed_session(agent, environment)["id"]
            if not as_json:
                console.print(f"session {session}")
        # The stream is open before the message goes, so no event of the turn is missed.
        with client.event_stream(session, read_timeout=wait) as events:
            user = {"type": "user.message", "content": [{"type": "text", "text": message}]}
            client.send_events(session, [user])
            ended = follow_turn(events, as_json)
    if ended is None or ended.get("type") != "session.status_idle":
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="SHOPFLOOR_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SHOPFLOOR_PORT")] = 8000,
    database_url: DatabaseUrl = "",
    data_dir: DataDir = Path(".shopfloor"),
    database_schema: Annotated[
        str | None,
        typer.Option(
            envvar="SHOPFLOOR_DATABASE_SCHEMA", help="PostgreSQL schema for shopfloor's tables."
        ),
    ] = None,
    worker_api_key: Annotated[
        str | None, typer.Option(envvar="SHOPFLOOR_WORKER_API_KEY", help="Static worker key.")
    ] = None,
    admin_api_key: AdminKey = None,
    worker_ttl: Annotated[
        float | None,
        typer.Option(
            envvar="SHOPFLOOR_WORKER_TTL_SECONDS",
            help="Seconds of silence before a worker is dead (default: 3 heartbeat intervals).",
        ),
    ] = None,
    claim_ttl: Annotated[
        float,
        typer.Option(
            envvar="SHOPFLOOR_CLAIM_TTL_SECONDS",
            help="Seconds a pre-claimed session may wait for its first status report.",
        ),
    ] = 120.0,
    reap_interval: Annotated[
        float,
        typer.Option(
            envvar="SHOPFLOOR_REAP_INTERVAL_SECONDS", help="Seconds between upkeep passes."
        ),
    ] = 5.0,
    heartbeat_interval_ms: Annotated[
        int, typer.Option(envvar="SHOPFLOOR_HEARTBEAT_INTERVAL_MS")
    ] = 30_000,
    poll_interval_ms: Annotated[int, typer.Option(envvar="SHOPFLOOR_POLL_INTERVAL_MS")] = 5_000,
    poll_hold_ms: Annotated[
        int,
        typer.Option(
            envvar="SHOPFLOOR_POLL_HOLD_MS",
            help="Milliseconds an idle AgentFactory worker's empty poll waits for work (0: none).",
        ),
    ] = 1_000,
    runtime_token_ttl: Annotated[
        int, typer.Option(envvar="SHOPFLOOR_RUNTIME_TOKEN_TTL_SECONDS")
    ] = 3600,
    issue_lock_ttl: Annotated[
        float,
        typer.Option(
            envvar="SHOPFLOOR_ISSUE_LOCK_TTL_SECONDS",
            help="Seconds an unrefreshed issue lock lasts before parked work runs.",
        ),
    ] = 7200.0,
    file_lock_ttl: Annotated[
        float,
        typer.Option(
            envvar="SHOPFLOOR_FILE_LOCK_TTL_SECONDS", help="Seconds a file reservation lasts."
        ),
    ] = 3600.0,
    processes: Annotated[
        int, typer.Option(envvar="SHOPFLOOR_PROCESSES", help="Server processes (PostgreSQL only).")
    ] = 1,
    signing_key_file: SigningKeyFile = None,
    max_body_bytes: Annotated[
        int,
        typer.Option(
            envvar="SHOPFLOOR_MAX_BODY_BYTES",
            help="Largest request body, unless a route declares its own limit.",
        ),
    ] = 1024 * 1024,
    log_level: Annotated[str, typer.Option(envvar="SHOPFLOOR_LOG_LEVEL")] = "info",
    model_base_url: Annotated[
        str | None,
        typer.Option(
            envvar="SHOPFLOOR_MODEL_BASE_URL",
            help="Messages API behind managed sessions (default: the Anthropic API).",
        ),
    ] = None,
    model_api_key: Annotated[
        str | None,
        typer.Option(
            envvar="SHOPFLOOR_MODEL_API_KEY",
            help="Key for the Messages API (default: ANTHROPIC_API_KEY).",
        ),
    ] = None,
    model_timeout: Annotated[
        float,
        typer.Option(
            envvar="SHOPFLOOR_MODEL_TIMEOUT_SECONDS", help="Seconds one model call may take."
        ),
    ] = 600.0,
    model_max_tokens: Annotated[
        int, typer.Option(envvar="SHOPFLOOR_MODEL_MAX_TOKENS", help="max_tokens of model calls.")
    ] = 8192,
    turn_lease: Annotated[
        float,
        typer.Option(
            envvar="SHOPFLOOR_TURN_LEASE_SECONDS",
            help="Lease of the process running a managed session's model call.",
        ),
    ] = 30.0,
    work_lease_ttl: Annotated[
        int,
        typer.Option(
            envvar="SHOPFLOOR_WORK_LEASE_TTL_SECONDS",
            help="Lease of an environment work item whose worker asks for no TTL (10-600).",
        ),
    ] = 60,
    stream_keepalive: Annotated[
        float,
        typer.Option(
            envvar="SHOPFLOOR_STREAM_KEEPALIVE_SECONDS",
            help="Seconds without an event after which a session's event stream sends a ping.",
            min=0.1,
        ),
    ] = 15.0,
    secret_key_file: Annotated[
        Path | None,
        typer.Option(
            envvar="SHOPFLOOR_SECRET_KEY_FILE",
            help="Key file sealing stored secrets (default: secret-keys.json in the data dir).",
        ),
    ] = None,
    github_api_url: Annotated[
        str,
        typer.Option(
            envvar="SHOPFLOOR_GITHUB_API_URL",
            help="GitHub's REST API, for GitHub App installation tokens.",
        ),
    ] = "https://api.github.com",
    batch_lease: Annotated[
        float,
        typer.Option(
            envvar="SHOPFLOOR_BATCH_LEASE_SECONDS",
            help="Seconds a worker holds a batch item before it is leased again.",
            min=1.0,
        ),
    ] = 600.0,
    metrics_token: Annotated[
        str | None,
        typer.Option(
            envvar="SHOPFLOOR_METRICS_TOKEN",
            help="Bearer token a Prometheus scraper presents for /metrics (or the admin key).",
        ),
    ] = None,
    metrics_public: Annotated[
        bool,
        typer.Option(
            envvar="SHOPFLOOR_METRICS_PUBLIC", help="Serve /metrics to anyone, without a token."
        ),
    ] = False,
    a2a_allowed_hosts: Annotated[
        str,
        typer.Option(
            envvar="SHOPFLOOR_A2A_ALLOWED_HOSTS",
            help="Hosts of remote A2A agents the server may call (comma-separated; empty: any).",
        ),
    ] = "",
    a2a_timeout: Annotated[
        float,
        typer.Option(
            envvar="SHOPFLOOR_A2A_TIMEOUT_SECONDS",
            help="Timeout of one request to a remote A2A agent.",
            min=0.1,
        ),
    ] = 10.0,
    routing_selector: Annotated[
        bool,
        typer.Option(
            envvar="SHOPFLOOR_ROUTING_SELECTOR_ENABLED",
            help="Let routing-select pick providers by Thompson sampling (off: the runner's own).",
        ),
    ] = False,
) -> None:
    """Start the server (SQLite in the data dir unless SHOPFLOOR_DATABASE_URL says otherwise)."""
    import uvicorn
    from sqlalchemy.engine import make_url

    from shopfloor.store.sql import async_url

    settings = Settings(
        database_url=database_url,
        database_schema=database_schema,
        data_dir=data_dir,
        host=host,
        port=port,
        worker_api_key=worker_api_key or None,
        admin_api_key=admin_api_key or None,
        worker_ttl_seconds=worker_ttl,
        claim_ttl_seconds=claim_ttl,
        reap_interval_seconds=reap_interval,
        heartbeat_interval_ms=heartbeat_interval_ms,
        poll_interval_ms=poll_interval_ms,
        poll_hold_ms=poll_hold_ms,
        runtime_token_ttl_seconds=runtime_token_ttl,
        issue_lock_ttl_seconds=issue_lock_ttl,
        file_lock_ttl_seconds=file_lock_ttl,
        max_body_bytes=max_body_bytes,
        signing_key_file=signing_key_file,
        log_level=log_level,
        model_base_url=model_base_url or None,
        model_api_key=model_api_key or None,
        model_timeout_seconds=model_timeout,
        model_max_tokens=model_max_tokens,
        turn_lease_seconds=turn_lease,
        work_lease_ttl_seconds=work_lease_ttl,
        stream_keepalive_seconds=stream_keepalive,
        secret_key_file=secret_key_file,
        github_api_url=github_api_url,
        batch_lease_seconds=batch_lease,
        metrics_token=metrics_token or None,
        metrics_public=metrics_public,
        a2a_allowed_hosts=a2a_allowed_hosts or None,
        a2a_timeout_seconds=a2a_timeout,
        routing_selector_enabled=routing_selector,
    ).with_integrations_from_env()
    url = settings.resolved_database_url()
    try:
        async_url(url)
    except ValueError as exc:  # say what is wrong with the URL, not where it was noticed
        console.print(f"[red]SHOPFLOOR_DATABASE_URL:[/] {exc}")
        raise typer.Exit(2) from None
    backend = make_url(url).get_backend_name()
    if processes < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--processes")
    if processes > 1 and backend == "sqlite":
        console.print(
            "[red]--processes > 1 needs PostgreSQL:[/] SQLite allows one writer, so "
            "one server process owns the file. Set SHOPFLOOR_DATABASE_URL=postgresql://…"
        )
        raise typer.Exit(2)
    console.print(
        f"shopfloor on http://{host}:{port}  database: {make_url(url).render_as_string()}"
    )
    console.print(f"console: http://{host}:{port}/  metrics: http://{host}:{port}/metrics")
    if processes > 1:
        os.environ.update(settings.to_env())
        with shared_metrics_dir():
            _run_processes(processes, host, port, log_level)
        return
    from shopfloor.app import served_app

    uvicorn.run(
        served_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        loop="uvloop",
        http="httptools",
        backlog=LISTEN_BACKLOG,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


@sessions_app.command("create")
def sessions_create(
    prompt: Annotated[str | None, typer.Option(help="What the agent should do.")] = None,
    issue_id: Annotated[str | None, typer.Option()] = None,
    issue_identifier: Annotated[str | None, typer.Option(help="e.g. ENG-1")] = None,
    title: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    work_type: Annotated[str | None, typer.Option(help="research, development, qa, …")] = None,
    priority: Annotated[int | None, typer.Option(min=1, max=9)] = None,
    project: Annotated[str | None, typer.Option()] = None,
    repository: Annotated[str | None, typer.Option()] = None,
    agent_id: Annotated[str | None, typer.Option()] = None,
    environment: Annotated[
        str | None, typer.Option(help="Queue it in this environment (env_…) as a work item.")
    ] = None,
    source_session_id: Annotated[
        str | None, typer.Option(help="The session that spawned this one.")
    ] = None,
    provider_session_id: Annotated[
        str | None, typer.Option(help="A provider session for the worker to resume.")
    ] = None,
    ref: Annotated[str | None, typer.Option(help="Git ref to check out.")] = None,
    branch: Annotated[str | None, typer.Option(help="Branch to work on.")] = None,
    env: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE for the agent (repeatable).")
    ] = None,
    max_duration_seconds: Annotated[int | None, typer.Option(min=1)] = None,
    work_item_json: Annotated[
        str | None,
        typer.Option(
            help="More work-item fields as a JSON object: kits, resolvedProfile, modelProfile, "
            "resources, stage fields…"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Queue a new session."""
    fields = {
        "prompt": prompt,
        "issueId": issue_id,
        "issueIdentifier": issue_identifier,
        "title": title,
        "description": description,
        "workType": work_type,
        "priority": priority,
        "projectName": project,
        "repository": repository,
        "agentId": agent_id,
        "environmentId": environment,
        "sourceSessionId": source_session_id,
        "providerSessionId": provider_session_id,
        "ref": ref,
        "branch": branch,
        "env": _env_pairs(env),
        "maxDurationSeconds": max_duration_seconds,
        **_json_object(work_item_json, "--work-item-json"),
    }
    with operator(url, admin_key, data_dir) as client:
        session = client.create_session(fields)
    if as_json:
        print(json.dumps(session, indent=2))
    else:
        console.print(f"queued {session['sessionId']} (priority {session['priority']})")


def _env_pairs(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--env")
        env[name] = value
    return env


def _json_object(raw: str | None, option: str) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint=option) from None
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object", param_hint=option)
    return value


@sessions_app.command("list")
def sessions_list(
    status: Annotated[str | None, typer.Option()] = None,
    project: Annotated[str | None, typer.Option()] = None,
    work_type: Annotated[str | None, typer.Option()] = None,
    worker: Annotated[str | None, typer.Option(help="Worker id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """List sessions, newest first."""
    with operator(url, admin_key, data_dir) as client:
        page = client.list_sessions(
            status=status, projectName=project, workType=work_type, workerId=worker, limit=limit
        )
    if as_json:
        print(json.dumps(page, indent=2))
        return
    table = Table(
        "session", "status", "prio", "work type", "issue", "project", "worker", "queued at"
    )
    for s in page["sessions"]:
        table.add_row(
            s["sessionId"],
            s["status"],
            str(s["priority"]),
            s["workType"] or "",
            s["issueIdentifier"] or "",
            s["projectName"] or "",
            s["workerId"] or "",
            s["queuedAt"],
        )
    console.print(table)


@sessions_app.command("show")
def sessions_show(
    session_id: str,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Print the session's timeline live until the session ends."
        ),
    ] = False,
    interval: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds before --follow reconnects a stream that ended."),
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Show one session with its status history; --follow streams its timeline."""
    with operator(url, admin_key, data_dir) as client:
        if follow:
            follow_timeline(client, session_id, interval, as_json)
            return
        session = client.get_session(session_id)
    if as_json:
        print(json.dumps(session, indent=2))
        return
    _print_session(session)


@sessions_app.command("stop")
def sessions_stop(
    session_id: str,
    reason: Annotated[str | None, typer.Option(help="Why; shown to the worker.")] = None,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Stop a session: it ends `stopped` and its worker is told to stop the agent."""
    with operator(url, admin_key, data_dir) as client:
        session = client.stop_session(session_id, reason)
    console.print(f"{session['sessionId']} is {session['status']}")


@sessions_app.command("prompt")
def sessions_prompt(
    session_id: str,
    text: Annotated[str, typer.Argument(help="The prompt, delivered as a directive.")],
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Send a running session a new prompt (urgent lane)."""
    with operator(url, admin_key, data_dir) as client:
        message = client.prompt_session(session_id, text)
    console.print(f"queued {message['type']} {message['id']} ({message['lane']} lane)")


@sessions_app.command("nudge")
def sessions_nudge(
    session_id: str,
    text: Annotated[str | None, typer.Argument(help="Optional note.")] = None,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Nudge a session (normal lane)."""
    with operator(url, admin_key, data_dir) as client:
        message = client.nudge_session(session_id, text)
    console.print(f"queued {message['type']} {message['id']} ({message['lane']} lane)")


def _print_session(session: dict[str, Any]) -> None:
    for key, value in session.items():
        if key != "history" and value is not None:
            console.print(f"[bold]{key}[/]: {value}")
    table = Table("at", "status", "worker", "reason", title="history")
    for change in session.get("history") or []:
        table.add_row(
            change["at"], change["status"] or "", change["workerId"] or "", change["reason"] or ""
        )
    console.print(table)


@workers_app.command("list")
def workers_list(
    status: Annotated[str | None, typer.Option(help="active, dead or deregistered")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """List registered workers."""
    with operator(url, admin_key, data_dir) as client:
        workers = client.list_workers(status)
    if as_json:
        print(json.dumps(workers, indent=2))
        return
    table = Table("worker", "status", "host", "capacity", "active", "projects", "last heartbeat")
    for w in workers:
        table.add_row(
            w["workerId"],
            w["status"],
            w["hostname"],
            str(w["capacity"]),
            str(w["activeCount"]),
            ",".join(w["projects"] or []),
            w["lastHeartbeatAt"],
        )
    console.print(table)


@credentials_app.command("set")
def credentials_set(
    name: Annotated[str, typer.Argument(help="The environment variable, e.g. GITHUB_TOKEN.")],
    org: Annotated[str, typer.Option(help="Organisation id or slug.")] = "default",
    project: Annotated[str | None, typer.Option(help="Only for this project.")] = None,
    env_name: Annotated[
        str | None, typer.Option("--env", help="Only for this environment.")
    ] = None,
    value: Annotated[
        str | None, typer.Option(help="The value (default: asked for, not echoed).")
    ] = None,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Store a credential (replacing the same name in the same place)."""
    secret = value if value is not None else typer.prompt(f"{name}", hide_input=True)
    body = {"name": name, "value": secret, "projectId": project, "envName": env_name}
    with operator(url, admin_key, data_dir) as client:
        stored = client.set_credential(org, {k: v for k, v in body.items() if v is not None})
    console.print(f"{stored['id']}  {stored['name']}  {stored['projectId']}/{stored['envName']}")


@credentials_app.command("list")
def credentials_list(
    org: Annotated[str, typer.Option(help="Organisation id or slug.")] = "default",
    project: Annotated[str | None, typer.Option()] = None,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """List credentials (never their values)."""
    with operator(url, admin_key, data_dir) as client:
        found = client.list_credentials(org, project)
    table = Table("id", "name", "project", "environment", "updated")
    for c in found:
        table.add_row(c["id"], c["name"], c["projectId"], c["envName"], c["updatedAt"])
    console.print(table)


@router_app.command("posteriors")
def router_posteriors(
    org: Annotated[str | None, typer.Option(help="One organisation (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """The Beta posterior of every (provider, work type) arm."""
    with operator(url, admin_key, data_dir) as client:
        metrics = client.routing_metrics(org)
    if as_json:
        print(json.dumps(metrics["posteriors"], indent=2))
        return
    table = Table("work type", "provider", "alpha", "beta", "expected", "confidence", "n")
    for p in metrics["posteriors"]:
        table.add_row(
            p["workType"],
            p["provider"],
            str(p["alpha"]),
            str(p["beta"]),
            str(p["expectedReward"]),
            str(p["confidence"]),
            str(p["totalObservations"]),
        )
    console.print(table)


@tokens_app.command("create")
def tokens_create(
    project: Annotated[str | None, typer.Option(help="Scope the token to one project.")] = None,
    org: Annotated[str | None, typer.Option()] = None,
    label: Annotated[str | None, typer.Option()] = None,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Mint a registration token; the secret is printed once."""
    with operator(url, admin_key, data_dir) as client:
        token = client.create_token(project, org, label)
    console.print(f"{token['id']}  {token['token']}")


@tokens_app.command("list")
def tokens_list(
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """List registration tokens (never their secrets)."""
    with operator(url, admin_key, data_dir) as client:
        tokens = client.list_tokens()
    table = Table("id", "kind", "project", "label", "created", "revoked")
    for t in tokens:
        table.add_row(
            t["id"],
            t["kind"],
            t["project"] or "",
            t["label"] or "",
            t["createdAt"],
            t["revokedAt"] or "",
        )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: str,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Revoke a registration token: its workers can no longer refresh their runtime tokens."""
    with operator(url, admin_key, data_dir) as client:
        client.revoke_token(token_id)
    console.print(f"revoked {token_id}")


@environments_app.command("create")
def environments_create(
    name: Annotated[str, typer.Option(help="Environment name.")],
    description: Annotated[str | None, typer.Option()] = None,
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", help="key=value, repeatable.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Create a self-hosted environment; its workers poll /v1/environments/<id>/work/poll."""
    pairs: dict[str, str] = {}
    for item in metadata or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--metadata")
        pairs[key] = value
    fields = {"name": name, "description": description, "metadata": pairs or None}
    with operator(url, admin_key, data_dir) as client:
        env = client.create_environment(fields)
    if as_json:
        print(json.dumps(env, indent=2))
    else:
        console.print(f"created {env['id']} ({env['name']})")


@environments_app.command("list")
def environments_list(
    include_archived: Annotated[bool, typer.Option("--include-archived")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """List environments, oldest first."""
    with operator(url, admin_key, data_dir) as client:
        envs = client.list_environments(include_archived)
    if as_json:
        print(json.dumps(envs, indent=2))
        return
    table = Table("environment", "name", "status", "description", "created")
    for e in envs:
        table.add_row(e["id"], e["name"], e["status"], e["description"] or "", e["created_at"])
    console.print(table)


@runs_app.command("create")
def runs_create(
    project: Annotated[str, typer.Option(help="Project UUID or slug.")],
    implementation_kind: Annotated[str, typer.Option(help="Workers of this kind claim it.")],
    worker_key: Annotated[
        str | None, typer.Option(help="Only the worker with this key claims it.")
    ] = None,
    message: Annotated[str | None, typer.Option(help="The user message to the agent.")] = None,
    snapshot_file: Annotated[
        Path | None,
        typer.Option(help="JSON request snapshot: messages, tools, context, forwardedProps."),
    ] = None,
    agent_id: Annotated[str | None, typer.Option()] = None,
    title: Annotated[str | None, typer.Option()] = None,
    run_id: Annotated[str | None, typer.Option(help="Caller-chosen run id (run_…).")] = None,
    conversation_id: Annotated[str | None, typer.Option(help="Conversation UUID.")] = None,
    idempotency_key: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Admit a run for agent-workers (POST /runs with config.agent_admission)."""
    admission: dict[str, Any] = {"mode": "worker", "implementation_kind": implementation_kind}
    if worker_key:
        admission["worker_key"] = worker_key
    body: dict[str, Any] = {"project_id": project}
    if worker_key:
        body["config"] = {"agent_admission": admission}
    else:  # the canonical form lets any worker of the kind claim it
        body["kind"] = "agent"
        body["request"] = {"implementation_kind": implementation_kind}
    if snapshot_file is not None:
        body["request_snapshot"] = json.loads(snapshot_file.read_text())
    elif message is not None:
        body["input"] = message
    if agent_id:
        body["target"] = {"type": "agent", "id": agent_id}
        if "request" in body:
            body["request"]["agent_id"] = agent_id
    if conversation_id:
        body["conversation_id"] = conversation_id
        if "request" in body:
            body["owner"] = {"kind": "conversation", "id": conversation_id}
    for key, value in (("title", title), ("run_id", run_id)):
        if value:
            body[key] = value
    if "request" in body and "request_snapshot" in body:
        body["request"]["request_snapshot"] = body.pop("request_snapshot")
    with operator(url, admin_key, data_dir) as client:
        reply = client.create_run(body, idempotency_key)
    if as_json:
        print(json.dumps(reply, indent=2))
    else:
        duplicate = " (already admitted)" if reply.get("duplicate") else ""
        console.print(f"admitted {reply['run_id']} ({reply['status']}){duplicate}")


@runs_app.command("show")
def runs_show(
    run_id: str,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Print the run's events live (server-sent) until it ends."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --follow: one JSON event per line.")
    ] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Show one run as JSON; --follow streams its events until it ends."""
    with operator(url, admin_key, data_dir) as client:
        if follow:
            follow_run(client, run_id, as_json)
            return
        print(json.dumps(client.get_run(run_id), indent=2))


@runs_app.command("list")
def runs_list(
    project: Annotated[str, typer.Option(help="Project UUID or slug.")],
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    cursor: Annotated[str | None, typer.Option(help="page_info.next of the page before.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """A project's runs, newest first."""
    with operator(url, admin_key, data_dir) as client:
        page = client.list_runs(project, cursor, limit)
    if as_json:
        print(json.dumps(page, indent=2))
        return
    table = Table("run", "kind", "status", "owner", "target/agent", "created", "completed")
    for r in page["data"]:
        table.add_row(
            r["run_id"],
            r["kind"],
            r["status"] + (f" ({r['waiting_reason']})" if r["waiting_reason"] else ""),
            f"{r['owner']['kind']}:{r['owner']['id']}",
            r["target"] or r["agent_id"],
            r["created_at"],
            r["completed_at"] or "",
        )
    console.print(table)
    if page["page_info"]["next"]:
        console.print(f"more: --cursor {page['page_info']['next']}")


@runs_app.command("cancel")
def runs_cancel(
    run_id: str,
    url: Url = "http://127.0.0.1:8000",
    admin_key: AdminKey = None,
    data_dir: DataDir = Path(".shopfloor"),
) -> None:
    """Cancel a queued or running run (one that has ended is left as it is)."""
    with operator(url, admin_key, data_dir) as client:
        reply = client.cancel_run(run_id)
    done = "cancelled" if reply["cancelled"] else "already ended"
    console.print(f"{run_id}: {done} ({reply['run']['status']})")


@signing_key_app.command("rotate")
def signing_key_rotate(
    data_dir: DataDir = Path(".shopfloor"),
    signing_key_file: SigningKeyFile = None,
    retire_after: Annotated[
        int,
        typer.Option(
            envvar="SHOPFLOOR_RUNTIME_TOKEN_TTL_SECONDS",
            help="Retire keys superseded longer ago than this (the runtime token TTL).",
        ),
    ] = 3600,
) -> None:
    """Sign new runtime JWTs with a new key. Running servers pick it up without a restart;
    tokens signed with the older keys stay valid until they expire."""
    from shopfloor.service import signing_keys

    path = Settings(data_dir=data_dir, signing_key_file=signing_key_file).signing_key_path
    now = int(time.time() * 1000)
    try:
        key, retired = signing_keys.rotate(path, now, retire_after * 1000)
    except signing_keys.SigningKeyError as exc:
        console.print(f"[red]{exc}[/] (start the server once to create it)")
        raise typer.Exit(1) from None
    console.print(f"new signing key {key.kid} in {path}")
    if retired:
        console.print("retired: " + ", ".join(retired))


@db_app.command("upgrade")
def db_upgrade(
    database_url: DatabaseUrl = "",
    data_dir: DataDir = Path(".shopfloor"),
    database_schema: Annotated[str | None, typer.Option(envvar="SHOPFLOOR_DATABASE_SCHEMA")] = None,
) -> None:
    """Migrate the database schema to the newest version."""
    from sqlalchemy.engine import make_url

    from shopfloor.store import open_store

    url = Settings(database_url=database_url, data_dir=data_dir).resolved_database_url()

    async def upgrade() -> None:
        store = await open_store(url, schema=database_schema)
        await store.close()

    asyncio.run(upgrade())
    console.print(f"database at head: {make_url(url).render_as_string()}")


@db_app.command("copy")
def db_copy(
    source: Annotated[
        str,
        typer.Option(
            "--from", help="Database to copy from, e.g. sqlite:///.shopfloor/shopfloor.db"
        ),
    ],
    target: Annotated[
        str, typer.Option("--to", help="Database to copy into, e.g. postgresql://host/db")
    ],
    from_schema: Annotated[
        str | None, typer.Option(help="PostgreSQL schema of the source.")
    ] = None,
    to_schema: Annotated[
        str | None, typer.Option(help="PostgreSQL schema of the target (created if missing).")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Empty a target that already holds data first.")
    ] = False,
) -> None:
    """Copy every table of one database into another (e.g. SQLite into PostgreSQL).
    Stop the servers first. The target is migrated, filled in one transaction and checked
    row for row against the source; an error leaves it unchanged."""
    from sqlalchemy.engine import make_url

    from shopfloor.store.copy import CopyError, copy_database

    try:
        copied = asyncio.run(
            copy_database(
                source,
                target,
                source_schema=from_schema,
                target_schema=to_schema,
                replace=replace,
            )
        )
    except (CopyError, ValueError) as exc:
        console.print(f"[red]copy refused:[/] {exc}")
        raise typer.Exit(1) from None
    table = Table("table", "rows")
    for item in copied:
        table.add_row(item.table, str(item.rows))
    console.print(table)
    console.print(
        f"copied {make_url(source).render_as_string()} -> {make_url(target).render_as_string()}"
        "; row counts verified"
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


def _run_processes(processes: int, host: str, port: int, log_level: str) -> None:
    import uvicorn

    uvicorn.run(
        "shopfloor.app:served_app",
        factory=True,
        host=host,
        port=port,
        workers=processes,
        log_level=log_level,
        loop="uvloop",
        http="httptools",
        backlog=LISTEN_BACKLOG,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


@contextmanager
def shared_metrics_dir() -> Iterator[None]:
    """Server processes share their metrics through files in a fresh private folder (removed
    when they stop), unless PROMETHEUS_MULTIPROC_DIR already names one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    folder = tempfile.mkdtemp(prefix="shopfloor-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
