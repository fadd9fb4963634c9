"""Table definitions for SQLAlchemy Core. The migrations in migrations/versions build the same."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

orgs = sa.Table(
    "orgs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("slug", sa.String(100), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# The credential vault (migration 0008pl_credentials): '' in project / env_name means all.
org_credentials = sa.Table(
    "org_credentials",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("project", sa.String(200), nullable=False),
    sa.Column("env_name", sa.String(100), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("ciphertext", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("uq_org_credentials_scope", "org_id", "project", "env_name", "name", unique=True),
)

# The provider router (migration 0008pl_routing).
routing_posteriors = sa.Table(
    "routing_posteriors",
    metadata,
    sa.Column("org_id", sa.String(64), primary_key=True),
    sa.Column("provider", sa.String(100), primary_key=True),
    sa.Column("work_type", sa.String(64), primary_key=True),
    sa.Column("alpha", sa.Float, nullable=False),
    sa.Column("beta", sa.Float, nullable=False),
    sa.Column("total_observations", sa.BigInteger, nullable=False),
    sa.Column("avg_reward", sa.Float, nullable=False),
    sa.Column("avg_cost_usd", sa.Float, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
routing_observations = sa.Table(
    "routing_observations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("provider", sa.String(100), nullable=False),
    sa.Column("work_type", sa.String(64), nullable=False),
    sa.Column("reward", sa.Float, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("project", sa.String(200)),
    sa.Column("task_completed", sa.Boolean),
    sa.Column("pr_created", sa.Boolean),
    sa.Column("qa_result", sa.String(16)),
    sa.Column("cost_usd", sa.Float),
    sa.Column("wall_clock_ms", sa.BigInteger),
    sa.Column("confidence", sa.Float),
    sa.Column("exploration_reason", sa.String(64)),
    sa.Index("ix_routing_observations_org", "org_id", "id"),
)

# Daemon mutations (migration 0008pl_daemon_mutations).
daemon_mutations = sa.Table(
    "daemon_mutations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("worker_id", sa.String(64), nullable=False),
    sa.Column("op", sa.String(32), nullable=False),
    sa.Column("params", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("requested_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("delivered_at", sa.BigInteger),
    sa.Column("cancelled_at", sa.BigInteger),
    sa.Index("ix_daemon_mutations_worker", "worker_id", "status"),
)

# Per queue and minute (epoch ms // 60,000): the sessions handed to workers and how long they
# had waited (migration 0009c2). Each server process adds its counts in batches; the
# console reads the last minutes by the key's leading column.
queue_minutes = sa.Table(
    "queue_minutes",
    metadata,
    sa.Column("minute", sa.BigInteger, nullable=False),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("queue", sa.String(200), nullable=False),
    sa.Column("project", sa.String(200), nullable=False),  # "" for none
    sa.Column("claims", sa.BigInteger, nullable=False),
    sa.Column("wait_ms_sum", sa.BigInteger, nullable=False),
    sa.Column("wait_ms_max", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("minute", "org_id", "queue", "project"),
)

# Every key the server checks by its hash: user keys and worker registration tokens
# (migration 0007 made registration_tokens into this table).
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("key_type", sa.String(32), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_prefix", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("projects", JSONType),
    sa.Column("scopes", JSONType, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("revoked_at", sa.BigInteger),
    sa.Index("ix_api_keys_org", "org_id", "id"),
)

m2m_clients = sa.Table(
    "m2m_clients",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scopes", JSONType, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger),
    sa.Index("ix_m2m_clients_org", "org_id", "id"),
)

# Repositories, their credential sources and batch work (migration 0008gc).
repositories = sa.Table(
    "repositories",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("url", sa.String(500), nullable=False),
    sa.Column("key", sa.String(300), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("project", sa.String(200)),
    sa.Column("source_id", sa.String(64)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("uq_repositories_key", "org_id", "key", unique=True),
)

git_sources = sa.Table(
    "git_sources",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("sealed_secret", sa.Text, nullable=False),
    sa.Column("org_default", sa.Boolean, nullable=False),
    sa.Column("app_id", sa.String(64)),
    sa.Column("installation_id", sa.String(64)),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("last_error", sa.String(500)),
    sa.Column("last_error_at", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_git_sources_org", "org_id", "id"),
)

batch_items = sa.Table(
    "batch_items",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("capability", sa.String(64), nullable=False),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("project", sa.String(200)),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("worker_id", sa.String(64)),
    sa.Column("lease_epoch", sa.Integer, nullable=False),
    sa.Column("lease_expires_at", sa.BigInteger),
    sa.Column("result", JSONType),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("finished_at", sa.BigInteger),
    sa.Index("ix_batch_items_queue", "org_id", "capability", "status", "created_at"),
)

# Work-item fields a project's sessions get unless they set their own (migration 0008pd).
project_defaults = sa.Table(
    "project_defaults",
    metadata,
    sa.Column("org_id", sa.String(64), primary_key=True),
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("fields", JSONType, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("protocol", sa.String(32), nullable=False),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("registered_at", sa.BigInteger, nullable=False),
    sa.Column("last_heartbeat_at", sa.BigInteger, nullable=False),
    sa.Column("active_count", sa.Integer, nullable=False, server_default="0"),
    # Bumped by every poll that claims (see SqlStore.poll_worker on Postgres).
    sa.Column("claim_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("version", sa.String(64)),
    sa.Column("projects", JSONType),
    sa.Column("registration_id", sa.String(64)),
    sa.Column("machine_id", sa.String(255)),
    sa.Column("ended_at", sa.BigInteger),
    sa.Column("metadata", JSONType, nullable=False),
    # Since when its heartbeats report fewer sessions than it holds (migration 0005).
    sa.Column("undercount_since", sa.BigInteger),
    sa.Column("org_id", sa.String(64), nullable=False, server_default="org_default"),
    sa.Index("ix_workers_liveness", "status", "last_heartbeat_at"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("queue", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("queued_at", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("lease_epoch", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("worker_id", sa.String(64)),
    sa.Column("claimed_at", sa.BigInteger),
    sa.Column("lease_expires_at", sa.BigInteger),
    sa.Column("project", sa.String(200)),
    sa.Column("issue_id", sa.String(200)),
    sa.Column("issue_identifier", sa.String(200)),
    sa.Column("title", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("prompt", sa.Text),
    sa.Column("work_type", sa.String(64)),
    sa.Column("repository", sa.Text),
    sa.Column("agent_id", sa.String(200)),
    sa.Column("provider_session_id", sa.String(200)),
    sa.Column("worktree_path", sa.Text),
    sa.Column("total_cost_usd", sa.Float),
    sa.Column("input_tokens", sa.BigInteger),
    sa.Column("output_tokens", sa.BigInteger),
    sa.Column("error_message", sa.Text),
    sa.Column("stop_requested_at", sa.BigInteger),
    sa.Column("extra", JSONType, nullable=False),
    sa.Column("delivered_to", sa.String(255)),
    sa.Column("delivered_at", sa.BigInteger),
    sa.Column("started_at", sa.BigInteger),
    sa.Column("last_heartbeat_at", sa.BigInteger),
    sa.Column("lease_ttl_seconds", sa.Integer),
    sa.Column("ended_at", sa.BigInteger),
    sa.Column("metadata", JSONType),
    sa.Column("org_id", sa.String(64), nullable=False, server_default="org_default"),
    sa.Column("public_id", sa.String(16)),  # migration 0008pl: records.public_id_of(id)
    # The claim path reads only this partial index, so finished rows never slow a poll.
    sa.Index(
        "ix_sessions_claimable",
        "queue",
        "priority",
        "queued_at",
        "id",
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    ),
    sa.Index("ix_sessions_worker", "worker_id", "status"),
    sa.Index("ix_sessions_org", "org_id", "id"),
    sa.Index("ix_sessions_status", "status"),
    sa.Index("ix_sessions_public_id", "public_id"),
    # An issue's sessions, newest first (Linear's failure backoff); only sessions on an issue.
    sa.Index(
        "ix_sessions_issue",
        "org_id",
        "issue_id",
        "created_at",
        sqlite_where=sa.text("issue_id IS NOT NULL"),
        postgresql_where=sa.text("issue_id IS NOT NULL"),
    ),
    # Only sessions holding a lease (the live ones): a claim adds one entry and an ending
    # removes it, where a full index would move every row's entry twice, to and from NULL.
    sa.Index(
        "ix_sessions_live_lease",
        "lease_expires_at",
        sqlite_where=sa.text("lease_expires_at IS NOT NULL"),
        postgresql_where=sa.text("lease_expires_at IS NOT NULL"),
    ),
)

session_events = sa.Table(
    "session_events",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16)),
    sa.Column("worker_id", sa.String(64)),
    sa.Column("reason", sa.Text),
    sa.Column("data", JSONType, nullable=False),
    sa.Index("ix_session_events_session", "session_id", "id"),
)

# -- session channel (migration 0002ch) --

inbox_messages = sa.Table(
    "inbox_messages",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("lane", sa.String(8), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("user_id", sa.String(200)),
    sa.Column("user_name", sa.String(200)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("delivered_at", sa.BigInteger),
    sa.Column("delivery_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("acked_at", sa.BigInteger),
    sa.Column("archived_at", sa.BigInteger),
    sa.Index("ix_inbox_messages_session", "session_id", "created_at"),
)

# Issue locks and issue records are keyed per organisation (migration 0010ik): two
# organisations may use the same issue ids.
issue_locks = sa.Table(
    "issue_locks",
    metadata,
    sa.Column("org_id", sa.String(64), primary_key=True, server_default="org_default"),
    sa.Column("issue_id", sa.String(200), primary_key=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("work_type", sa.String(64)),
    sa.Column("locked_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Index("ix_issue_locks_expiry", "expires_at"),
)

file_locks = sa.Table(
    "file_locks",
    metadata,
    sa.Column("repo_id", sa.String(200), primary_key=True),
    sa.Column("path", sa.String(1000), primary_key=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("reserved_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("worker_id", sa.String(64)),  # migration 0005
    sa.Index("ix_file_locks_session", "session_id"),
)

issues = sa.Table(
    "issues",
    metadata,
    sa.Column("org_id", sa.String(64), primary_key=True, server_default="org_default"),
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("identifier", sa.String(200), nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("state_name", sa.String(64)),
    sa.Column("labels", JSONType, nullable=False),
    sa.Column("parent_id", sa.String(200)),
    sa.Column("project", sa.String(200)),
    sa.Column("assignee", sa.String(200)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("ix_issues_identifier", "org_id", "identifier"),
)

recovery_packets = sa.Table(
    "recovery_packets",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("data", JSONType, nullable=False),
    sa.Index("ix_recovery_packets_session", "session_id", "attempt"),
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("config", JSONType, nullable=False),
    sa.Column("metadata", JSONType, nullable=False),
    sa.Column("scope", sa.String(32)),
    sa.Column("archived_at", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("org_id", sa.String(64), nullable=False, server_default="org_default"),
    sa.Index("ix_projects_kind", "kind", "id"),
)

# Who polled which queue when (Worker-ID polls only): the `workers_polling` statistic.
queue_pollers = sa.Table(
    "queue_pollers",
    metadata,
    sa.Column("queue", sa.String(200), primary_key=True),
    sa.Column("worker_id", sa.String(255), primary_key=True),
    sa.Column("polled_at", sa.BigInteger, nullable=False),
)


# -- Veryfront agent-workers: a run is a session row plus this row (migration 0002vf) --

agent_workers = sa.Table(
    "agent_workers",
    metadata,
    sa.Column("worker_id", sa.String(64), primary_key=True),
    sa.Column("project_id", sa.String(36), nullable=False),
    sa.Column("project_name", sa.String(200), nullable=False),
    sa.Column("implementation_kind", sa.String(64), nullable=False),
    sa.Column("worker_key", sa.String(128), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("implementation_display_name", sa.String(128)),
    sa.Column("display_name", sa.String(128)),
    sa.Column("metadata", JSONType),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index(
        "uq_agent_workers_key", "project_id", "implementation_kind", "worker_key", unique=True
    ),
    sa.Index("uq_agent_workers_token", "token_hash", unique=True),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("project_id", sa.String(36), nullable=False),
    sa.Column("conversation_id", sa.String(36), nullable=False),
    sa.Column("message_id", sa.String(36), nullable=False),
    sa.Column("agent_id", sa.String(200), nullable=False),
    sa.Column("implementation_kind", sa.String(64), nullable=False),
    sa.Column("worker_key", sa.String(128)),
    sa.Column("request_snapshot", JSONType),
    sa.Column("latest_event_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("latest_external_event_sequence", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("terminal_error_code", sa.String(200)),
    sa.Column("terminal_error_message", sa.Text),
    sa.Column("completion_metadata", JSONType),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    # The user side (migration 0005vf): canonical kind, owner and lineage, waiting state.
    sa.Column("kind", sa.String(16), nullable=False, server_default="agent"),
    sa.Column("owner_kind", sa.String(16), nullable=False, server_default="conversation"),
    sa.Column("parent_run_id", sa.String(128)),
    sa.Column("root_run_id", sa.String(128)),
    sa.Column("spec", JSONType),
    sa.Column("output", JSONType),
    sa.Column("waiting_tool_call_id", sa.String(128)),
    sa.Column("waiting_tool_name", sa.String(128)),
    sa.Column("started_at", sa.BigInteger),
    sa.Column("completed_at", sa.BigInteger),
    sa.Index("uq_runs_session", "session_id", unique=True),
    sa.Index("uq_runs_idempotency", "project_id", "idempotency_key", unique=True),
    sa.Index("ix_runs_project_created", "project_id", "created_at", "run_id"),
    sa.Index("ix_runs_conversation", "conversation_id"),
)

# An event's payload is kept as the JSON text it arrived as (key order intact, and a NUL
# character stays the escape `\u0000`, which JSONB cannot hold).
run_events = sa.Table(
    "run_events",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("event_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
)

run_worker_sessions = sa.Table(
    "run_worker_sessions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("worker_id", sa.String(64), nullable=False),
    sa.Column("implementation_kind", sa.String(64), nullable=False),
    sa.Column("session_key", sa.String(512), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("metadata", JSONType),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("ended_at", sa.BigInteger),
    sa.Index("uq_run_worker_sessions_run_worker", "run_id", "worker_id", unique=True),
)


# -- Veryfront conversations, their messages and input requests (migration 0005vf) --

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project_id", sa.String(36)),
    sa.Column("project_name", sa.String(200)),
    sa.Column("title", sa.Text),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("metadata", JSONType),
    sa.Column("message_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("deleted_at", sa.BigInteger),
    sa.Column("org_id", sa.String(64), nullable=False, server_default="org_default"),
)

conversation_messages = sa.Table(
    "conversation_messages",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("conversation_id", sa.String(36), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("parts", JSONType, nullable=False),
    sa.Column("metadata", JSONType),
    sa.Column("parent_id", sa.String(36)),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("uq_conversation_messages_seq", "conversation_id", "seq", unique=True),
    sa.Index(
        "uq_conversation_messages_idempotency", "conversation_id", "idempotency_key", unique=True
    ),
)

input_requests = sa.Table(
    "input_requests",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("conversation_id", sa.String(36), nullable=False),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("tool_call_id", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("requested_responder_type", sa.String(16), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("fields", JSONType, nullable=False),
    sa.Column("metadata", JSONType),
    sa.Column("response", JSONType),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("submitted_at", sa.BigInteger),
    sa.Column("cancelled_at", sa.BigInteger),
    sa.Column("expired_at", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("ix_input_requests_conversation", "conversation_id", "created_at"),
    sa.Index("uq_input_requests_tool_call", "run_id", "tool_call_id", unique=True),
)


# -- managed-agent sessions (migration 0005ms): agents, and the managed state of a session --
# A managed session is a `sessions` row (its work item) plus a `managed_sessions` row; its
# event log is the session's timeline (`session_events`, kind = the event type).

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # The environment the creating key is limited to (None: an unrestricted key made it).
    sa.Column("project", sa.String(200)),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("archived_at", sa.BigInteger),
    sa.Column("org_id", sa.String(64), nullable=False, server_default="org_default"),
    sa.Index("ix_agents_org", "org_id", "id"),
)

agent_versions = sa.Table(
    "agent_versions",
    metadata,
    sa.Column("agent_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("definition", JSONType, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

managed_sessions = sa.Table(
    "managed_sessions",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("environment_id", sa.String(64), nullable=False),
    sa.Column("agent_id", sa.String(64)),
    sa.Column("agent_version", sa.Integer),
    sa.Column("agent", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("metadata", JSONType, nullable=False),
    sa.Column("resources", JSONType, nullable=False),
    sa.Column("usage", JSONType, nullable=False),
    # The agent loop: idle | model (a model call is due or running) | tools (calls pending).
    sa.Column("turn", sa.String(8), nullable=False),
    sa.Column("pending", JSONType, nullable=False),  # the calls the turn waits for
    sa.Column("unfed", JSONType, nullable=False),  # user content not yet sent to the model
    # The lease of the process that runs the turn's model call, fenced by its epoch.
    sa.Column("turn_owner", sa.String(64)),
    sa.Column("turn_epoch", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("turn_expires_at", sa.BigInteger),
    # The turn the session is in (migration 0006qm), stamped on each of its events.
    sa.Column("turn_id", sa.String(64)),
    # Bumped by every write: writes are compare-and-set on it.
    sa.Column("rev", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("archived_at", sa.BigInteger),
    sa.Column("deleted_at", sa.BigInteger),
    sa.Index("ix_managed_sessions_environment", "environment_id", "session_id"),
    sa.Index("ix_managed_sessions_agent", "agent_id", "session_id"),
    # The upkeep's look-up of turns to take over: only sessions that are not idle.
    sa.Index(
        "ix_managed_sessions_turn",
        "turn",
        "turn_expires_at",
        sqlite_where=sa.text("turn <> 'idle'"),
        postgresql_where=sa.text("turn <> 'idle'"),
    ),
)

# Webhook deliveries (migration 0008wh): stored before the provider is answered, processed
# later under a lease by any server process, exactly once per (org, provider, delivery id).
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("delivery_id", sa.String(200), nullable=False),
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.Column("body", JSONType, nullable=False),
    sa.Column("received_at", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("result", JSONType, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", sa.BigInteger),
    sa.Column("processed_at", sa.BigInteger),
    sa.UniqueConstraint("org_id", "provider", "delivery_id", name="uq_webhook_delivery"),
    sa.Index(
        "ix_webhook_deliveries_pending",
        "status",
        "lease_expires_at",
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    ),
)

webhook_secrets = sa.Table(
    "webhook_secrets",
    metadata,
    sa.Column("org_id", sa.String(64), primary_key=True),
    sa.Column("provider", sa.String(32), primary_key=True),
    sa.Column("ciphertext", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

webhook_triggers = sa.Table(
    "webhook_triggers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("prompt_template", sa.Text, nullable=False),
    sa.Column("match", JSONType, nullable=False),
    sa.Column("work_type", sa.String(64)),
    sa.Column("project", sa.String(200)),
    sa.Column("priority", sa.Integer),
    sa.Column("issue_template", sa.Text),
    sa.Column("cooldown_seconds", sa.Integer),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_webhook_triggers_org", "org_id", "provider", "event_type"),
)

# The audit log: per organisation, a hash chain with strictly increasing sequence numbers
# (the unique constraint is what keeps two writers from forking it).
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("sequence_number", sa.BigInteger, nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("actor_id", sa.String(200), nullable=False),
    sa.Column("actor_type", sa.String(32), nullable=False),
    sa.Column("entity_type", sa.String(64), nullable=False),
    sa.Column("entity_id", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
    sa.Column("signature", sa.Text, nullable=False),
    sa.Column("signing_key_id", sa.String(100), nullable=False),
    sa.Column("occurred_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("org_id", "sequence_number", name="uq_audit_sequence"),
    sa.Index("ix_audit_events_entity", "org_id", "entity_id", "sequence_number"),
    sa.Index("ix_audit_events_type", "org_id", "event_type", "sequence_number"),
)

# Sessions created, claimed, stopped, transferred and ended, waiting to be appended to their
# organisation's audit chain (migrations 0009au2, 0010au3): claims and ends written by the
# trigger store/audit_triggers.py defines, in the transaction of the status change; the
# others by the store's write of the action, in its transaction; deleted in the transaction
# that appends them.
audit_outbox = sa.Table(
    "audit_outbox",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("worker_id", sa.String(255)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("queue", sa.String(200), nullable=False),
    sa.Column("lease_epoch", sa.BigInteger, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    # Null in the trigger's rows (their actor: the worker): who created, stopped or
    # transferred the session; a created session's issue; a stop's or transfer's payload.
    sa.Column("actor_id", sa.String(200)),
    sa.Column("actor_type", sa.String(32)),
    sa.Column("issue_id", sa.String(200)),
    sa.Column("payload", sa.Text),
    sa.Index("ix_audit_outbox_org", "org_id", "id"),
)

# What agents remember (migration 0008mc). The full-text index is each database's own and
# is not declared here: PostgreSQL's generated `search` tsvector column, SQLite's FTS5 table
# memories_fts (memory_id, content); see store/sql_memory.py.
memories = sa.Table(
    "memories",
    metadata,
    sa.Column("id", sa.String(160), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("project", sa.String(200), nullable=False),
    sa.Column("scope", sa.String(200), nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("agent_id", sa.String(200)),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_memories_tenant", "org_id", "project", "created_at"),
)

# The A2A registry (migration 0008mc_a2a): remote agents of an organisation, and dispatches.
a2a_agents = sa.Table(
    "a2a_agents",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("slug", sa.String(200), nullable=False),
    sa.Column("trust_level", sa.String(16), nullable=False),
    sa.Column("card", JSONType, nullable=False),
    sa.Column("reachable", sa.Boolean, nullable=False),
    sa.Column("last_fetched_at", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("org_id", "url", name="uq_a2a_agents_org_url"),
)

a2a_dispatches = sa.Table(
    "a2a_dispatches",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("agent_id", sa.String(64), nullable=False),
    sa.Column("agent_name", sa.String(200), nullable=False),
    sa.Column("skill_id", sa.String(200), nullable=False),
    sa.Column("task_id", sa.String(200)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("dispatch_type", sa.String(16), nullable=False),
    sa.Column("session_id", sa.String(64)),
    sa.Column("input_text", sa.Text, nullable=False),
    sa.Column("output_text", sa.Text),
    sa.Column("dispatched_at", sa.BigInteger, nullable=False),
    sa.Column("completed_at", sa.BigInteger),
    sa.Index("ix_a2a_dispatches_org", "org_id", "id"),
)
