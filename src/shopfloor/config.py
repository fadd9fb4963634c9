"""Settings, read from `SHOPFLOOR_*` environment variables (each is also a `serve` flag)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

ENV_PREFIX = "SHOPFLOOR_"


@dataclass(frozen=True)
class Settings:
    database_url: str = ""
    # PostgreSQL only: keep shopfloor's tables in this schema (created if missing).
    database_schema: str | None = None
    data_dir: Path = Path(".shopfloor")
    host: str = "127.0.0.1"
    port: int = 8000
    worker_api_key: str | None = None
    admin_api_key: str | None = None
    # Worker liveness: a worker silent for longer than this is dead and its sessions are
    # requeued. Default: three heartbeat intervals (see `worker_ttl`).
    worker_ttl_seconds: float | None = None
    # A pre-claimed AgentFactory session must be reported running within this time.
    claim_ttl_seconds: float = 120.0
    # How often each process runs its reaper (lease expiry, dead workers).
    reap_interval_seconds: float = 5.0
    # Intervals handed to AgentFactory workers at registration, in milliseconds.
    heartbeat_interval_ms: int = 30_000
    poll_interval_ms: int = 5_000
    # An AgentFactory poll that finds no work for an idle worker waits up to this long for
    # some to arrive (0: answer at once, as the reference server does).
    poll_hold_ms: int = 1_000
    runtime_token_ttl_seconds: int = 3600
    # An issue lock not refreshed for this long lapses and parked work for the issue runs.
    issue_lock_ttl_seconds: float = 7200.0
    # A file reservation lapses after this long unless renewed.
    file_lock_ttl_seconds: float = 3600.0
    # The runtime-JWT signing keys (default: signing-keys.json in the data dir).
    signing_key_file: Path | None = None
    # The keys that encrypt stored secrets (default: secret-keys.json in the data dir).
    secret_key_file: Path | None = None
    # The largest request body a route takes unless it declares its own (api/limits.py).
    max_body_bytes: int = 1024 * 1024
    log_level: str = "info"
    # Managed-agent sessions: the Messages API behind the agent loop.
    model_base_url: str | None = None  # default: the Anthropic API
    model_api_key: str | None = None  # default: ANTHROPIC_API_KEY
    model_timeout_seconds: float = 600.0
    model_max_tokens: int = 8192
    # The lease of the process running a session's model call (renewed while it runs).
    turn_lease_seconds: float = 30.0
    # The lease of an environment work item whose worker asks for no TTL of its own.
    work_lease_ttl_seconds: int = 60
    # A managed session's event stream sends a ping after this long without an event.
    stream_keepalive_seconds: float = 15.0
    # GitHub's REST API, for GitHub App installation tokens (GitHub Enterprise: its /api/v3).
    github_api_url: str = "https://api.github.com"
    # A batch item leased to a worker is leased again after this long without its result.
    batch_lease_seconds: float = 600.0
    # /metrics: a bearer token a scraper may present (the admin key always may), or open to
    # anyone who can reach the port.
    metrics_token: str | None = None
    metrics_public: bool = False
    # Webhooks (README "Integrations"): the default organisation's secret per provider;
    # other organisations set theirs through the API (stored encrypted with the key file).
    webhook_secret_linear: str | None = None
    webhook_secret_github: str | None = None
    webhook_secret_github_actions: str | None = None
    webhook_secret_vercel: str | None = None
    # Development only: accept the default organisation's unsigned deliveries when no
    # secret is configured (otherwise they are refused 503).
    webhook_skip_verification: bool = False
    # A Linear delivery whose webhookTimestamp is further than this from now is refused.
    webhook_timestamp_tolerance_seconds: float = 60.0
    # Linear projects whose agent sessions are queued (comma-separated; unset: all).
    linear_allowed_projects: str | None = None
    # A Linear agent session is skipped (`session_hard_cap`) while the organisation's queue
    # holds this many unfinished sessions (0: no cap).
    linear_session_cap: int = 0
    # The audit log's signing seeds (default: audit-keys.json in the data dir). Webhook
    # secrets are sealed by the secret box (secret_key_file).
    audit_key_file: Path | None = None
    # Session claims and ends go into the audit log (through the outbox the database writes
    # in the transaction of the status change; see README "Audit"). Database-wide: a process
    # started with false removes the trigger for every process.
    audit_sessions: bool = True
    # How often each process's audit appender looks for facts (sessions created, claimed,
    # ended) waiting in the outbox. While the process is busy (at least
    # audit_busy_requests_per_s HTTP requests started since its last look) it lets them wait,
    # up to audit_append_max_lag_ms or audit_append_max_backlog facts (README "Audit").
    audit_append_interval_ms: int = 250
    audit_append_max_lag_ms: int = 10_000
    audit_append_max_backlog: int = 5_000
    audit_busy_requests_per_s: int = 100
    # The appender's batches are signed (Ed25519) by a child process, on another core than
    # the loop that serves requests; false: in the server process (README "Audit").
    audit_signer_process: bool = True
    # Remote A2A agents: the hosts the server may fetch cards from and send messages to
    # (comma-separated; unset: any), and the timeout of one such request.
    a2a_allowed_hosts: str | None = None
    a2a_timeout_seconds: float = 10.0

    def a2a_hosts(self) -> frozenset[str] | None:
        if not self.a2a_allowed_hosts:
            return None
        return frozenset(h.strip() for h in self.a2a_allowed_hosts.split(",") if h.strip())

    # The provider router (POST /api/sessions/{id}/routing-select): off unless "true".
    routing_selector_enabled: bool = False

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'shopfloor.db').resolve()}"

    def resolved_model_api_key(self) -> str | None:
        return self.model_api_key or os.environ.get("ANTHROPIC_API_KEY") or None

    @property
    def worker_ttl(self) -> float:
        """Seconds of silence after which a worker is dead: as set, else three heartbeat
        intervals (a worker that missed three heartbeats in a row)."""
        if self.worker_ttl_seconds is not None:
            return self.worker_ttl_seconds
        return 3 * self.heartbeat_interval_ms / 1000

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin-key"

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key_file or self.data_dir / "signing-keys.json"

    @property
    def secret_key_path(self) -> Path:
        return self.secret_key_file or self.data_dir / "secret-keys.json"

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.data_dir / "audit-keys.json"

    def webhook_secrets(self) -> dict[str, str | None]:
        return {
            "linear": self.webhook_secret_linear,
            "github": self.webhook_secret_github,
            "github-actions": self.webhook_secret_github_actions,
            "vercel": self.webhook_secret_vercel,
        }

    def allowed_linear_projects(self) -> frozenset[str] | None:
        if not self.linear_allowed_projects:
            return None
        return frozenset(p.strip() for p in self.linear_allowed_projects.split(",") if p.strip())

    def with_integrations_from_env(self) -> Settings:
        """These settings, with the webhook and audit settings read from the environment
        (`shopfloor serve` takes them from there only, not as flags)."""
        found = Settings.from_env()
        return replace(self, **{name: getattr(found, name) for name in INTEGRATION_SETTINGS})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The inverse of from_env, used to hand settings to child server processes."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[ENV_PREFIX + f.name.upper()] = str(value)
        return out


INTEGRATION_SETTINGS = (
    "webhook_secret_linear",
    "webhook_secret_github",
    "webhook_secret_github_actions",
    "webhook_secret_vercel",
    "webhook_skip_verification",
    "webhook_timestamp_tolerance_seconds",
    "linear_allowed_projects",
    "linear_session_cap",
    "audit_key_file",
    "audit_sessions",
    "audit_append_interval_ms",
    "audit_append_max_lag_ms",
    "audit_append_max_backlog",
    "audit_busy_requests_per_s",
    "audit_signer_process",
)

_FLOATS = {
    "worker_ttl_seconds",
    "reap_interval_seconds",
    "claim_ttl_seconds",
    "issue_lock_ttl_seconds",
    "file_lock_ttl_seconds",
    "model_timeout_seconds",
    "turn_lease_seconds",
    "stream_keepalive_seconds",
    "batch_lease_seconds",
    "webhook_timestamp_tolerance_seconds",
    "a2a_timeout_seconds",
}
_INTS = {
    "port",
    "heartbeat_interval_ms",
    "poll_interval_ms",
    "poll_hold_ms",
    "runtime_token_ttl_seconds",
    "max_body_bytes",
    "model_max_tokens",
    "work_lease_ttl_seconds",
    "linear_session_cap",
    "audit_append_interval_ms",
    "audit_append_max_lag_ms",
    "audit_append_max_backlog",
    "audit_busy_requests_per_s",
}

_BOOLS = {
    "metrics_public",
    "webhook_skip_verification",
    "routing_selector_enabled",
    "audit_sessions",
    "audit_signer_process",
}
_TRUTH = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _coerce(name: str, raw: str) -> object:
    try:
        if name in _FLOATS:
            return float(raw)
        if name in _INTS:
            return int(raw)
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{name.upper()} must be a number, got {raw!r}") from exc
    if name in _BOOLS:
        if raw.strip().lower() not in _TRUTH:
            raise ValueError(f"{ENV_PREFIX}{name.upper()} must be true or false, got {raw!r}")
        return _TRUTH[raw.strip().lower()]
    if name in ("data_dir", "signing_key_file", "secret_key_file", "audit_key_file"):
        return Path(raw)
    return raw
