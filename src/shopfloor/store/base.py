"""The store interface. Every backend implements it and passes tests/store/test_contract.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from shopfloor.store.a2a_records import A2aAgentRecord, A2aDispatchRecord, DispatchFilter
from shopfloor.store.git_records import (
    BatchItemRecord,
    GitSourceRecord,
    ProjectDefaultsRecord,
    RepositoryRecord,
)
from shopfloor.store.integration_records import (
    AuditBacklog,
    AuditFact,
    AuditQuery,
    AuditRecord,
    TriggerRule,
    WebhookDelivery,
    WebhookSecretRecord,
)
from shopfloor.store.managed_records import (
    AgentRecord,
    AgentVersionRecord,
    EventQuery,
    ManagedFilter,
    ManagedSessionRecord,
)
from shopfloor.store.memory_records import MemoryHit, MemoryQuery, MemoryRecord
from shopfloor.store.observers import StoreObservers
from shopfloor.store.records import (
    Delivery,
    Expect,
    FileLock,
    InboxMessage,
    IssueLock,
    IssueRecord,
    ProjectRecord,
    QueueStats,
    RecoveryPacket,
    SessionEvent,
    SessionFilter,
    SessionRecord,
    SessionStats,
    WorkerPoll,
    WorkerRecord,
)
from shopfloor.store.routing_records import Mutation, Observation, Posterior
from shopfloor.store.run_records import (
    AgentWorkerRecord,
    ConversationRecord,
    InputRequestRecord,
    MessageRecord,
    RunEventRecord,
    RunRecord,
    WorkerSessionRecord,
)
from shopfloor.store.stats_records import (
    QueueMinute,
    SessionCount,
    StatsScope,
    WorkerCount,
    WorkerPage,
)
from shopfloor.store.tenancy_records import (
    ApiKeyRecord,
    CredentialRecord,
    M2MClientRecord,
    OrgRecord,
)


class RunStore(Protocol):
    """Persistence of the run-oriented protocol (Veryfront agent-workers). A run is a session
    row (queue, status, lease) plus a run row (ids, snapshot, event cursors)."""

    async def register_agent_worker(
        self, worker: WorkerRecord, details: AgentWorkerRecord
    ) -> tuple[WorkerRecord, AgentWorkerRecord]:
        """Insert, or revive the worker already registered under (project, kind, key)."""
        ...

    async def get_agent_worker(self, worker_id: str) -> AgentWorkerRecord | None: ...
    async def find_agent_worker_by_token(self, token_hash: str) -> AgentWorkerRecord | None: ...
    async def find_agent_worker_and_worker_by_token(
        self, token_hash: str
    ) -> tuple[AgentWorkerRecord, WorkerRecord] | None:
        """A worker token's agent worker with its workers row, in one read."""
        ...

    async def insert_run(self, session: SessionRecord, run: RunRecord, event: SessionEvent) -> bool:
        """False (and nothing written) if the run id or (project, idempotency key) exists."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...
    async def get_run_state(
        self, run_id: str
    ) -> tuple[RunRecord, SessionRecord, WorkerSessionRecord | None] | None:
        """A run, its session and its holder's worker session (None without one), in one
        read."""
        ...

    async def get_run_by_session(self, session_id: str) -> RunRecord | None: ...
    async def find_run_by_idempotency(self, project_id: str, key: str) -> RunRecord | None: ...
    async def append_run_events(
        self,
        run_id: str,
        expect: Expect,
        events: Sequence[Mapping[str, Any]],
        now: int,
        expected_external_sequence: int | None = None,
        expected_event_id: int | None = None,
    ) -> RunRecord | None:
        """Append and advance both cursors by len(events), only if the session matches
        `expect` and the cursors match; None (nothing written) otherwise."""
        ...

    async def finish_run(
        self,
        run_id: str,
        session_id: str,
        expect: Expect,
        session_changes: Mapping[str, Any],
        run_changes: Mapping[str, Any],
        event: SessionEvent,
        worker_session_status: str | None = None,
    ) -> tuple[SessionRecord, RunRecord] | None:
        """The terminal change, with the run's open input requests cancelled and (given a
        status) its open worker sessions ended, in one transaction."""
        ...

    async def update_run(
        self, run_id: str, changes: Mapping[str, Any], *, where_null: Sequence[str] = ()
    ) -> RunRecord | None: ...
    async def list_project_runs(
        self, project_id: str, before: tuple[int, str] | None, limit: int
    ) -> list[tuple[RunRecord, SessionRecord]]:
        """Newest first, older than `before` = (created_at, run_id)."""
        ...

    async def active_conversation_runs(self, conversation_id: str) -> list[RunRecord]: ...
    async def append_server_event(
        self, run_id: str, event: Mapping[str, Any], now: int
    ) -> RunRecord | None:
        """An event the server produced: latest_event_id advances, the external sequence
        does not."""
        ...

    async def list_run_events(
        self, run_id: str, after_event_id: int = 0, limit: int = 1000
    ) -> list[RunEventRecord]: ...
    async def put_worker_session(self, record: WorkerSessionRecord) -> WorkerSessionRecord: ...
    async def get_worker_session(
        self, run_id: str, worker_id: str
    ) -> WorkerSessionRecord | None: ...


class ConversationStore(Protocol):
    """Veryfront conversations, their messages and input requests."""

    async def insert_conversation(self, conversation: ConversationRecord) -> bool: ...
    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None: ...
    async def update_conversation(
        self, conversation_id: str, changes: Mapping[str, Any], *, unlinked_only: bool = False
    ) -> ConversationRecord | None: ...
    async def add_message(self, message: MessageRecord) -> tuple[MessageRecord, bool] | None:
        """Append as the next seq; (existing, False) for a repeated idempotency key; None if
        the conversation is missing or deleted."""
        ...

    async def get_message(self, conversation_id: str, message_id: str) -> MessageRecord | None: ...
    async def list_messages(
        self,
        conversation_id: str,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int,
        newest: bool = False,
        role: str | None = None,
    ) -> list[MessageRecord]: ...
    async def open_input_request(
        self,
        request: InputRequestRecord,
        session_id: str,
        expect: Expect,
        tool_name: str,
        event: Mapping[str, Any],
    ) -> InputRequestRecord | None:
        """Insert the request, put its run into waiting for the tool call and append `event`,
        together, if the session matches `expect` and the run waits for no other call;
        DuplicateKey if the run has a request for that call already."""
        ...

    async def get_input_request(self, request_id: str) -> InputRequestRecord | None: ...
    async def find_input_request(
        self, run_id: str, tool_call_id: str
    ) -> InputRequestRecord | None: ...
    async def list_input_requests(
        self, conversation_id: str, status: str | None, limit: int
    ) -> list[InputRequestRecord]: ...
    async def settle_input_request(
        self, request_id: str, changes: Mapping[str, Any], result_event: Mapping[str, Any]
    ) -> tuple[InputRequestRecord, RunRecord | None] | None: ...


class ManagedStore(Protocol):
    """Persistence of managed-agent sessions: versioned agents, and a session row (the work
    item) plus its managed row, whose event log is the session's timeline."""

    async def insert_agent(self, agent: AgentRecord, first: AgentVersionRecord) -> None: ...
    async def get_agent(self, agent_id: str) -> AgentRecord | None: ...
    async def get_agent_version(self, agent_id: str, version: int) -> AgentVersionRecord | None: ...
    async def list_agents(
        self,
        *,
        project: str | None,
        include_archived: bool,
        after_id: str | None,
        limit: int,
        created_from: int | None = None,
        created_to: int | None = None,
        org_id: str | None = None,
    ) -> list[AgentRecord]: ...
    async def list_agent_versions(
        self, agent_id: str, *, after_version: int | None, limit: int
    ) -> list[AgentVersionRecord]: ...
    async def add_agent_version(
        self, agent_id: str, expected_version: int, definition: dict[str, Any], now: int
    ) -> AgentRecord | None:
        """The next version, only if the current one is `expected_version` (not archived)."""
        ...

    async def archive_agent(self, agent_id: str, now: int) -> AgentRecord | None: ...
    async def insert_managed_session(
        self,
        session: SessionRecord,
        created: SessionEvent,
        managed: ManagedSessionRecord,
        events: Sequence[SessionEvent],
    ) -> list[SessionEvent]:
        """Session row, managed row and first events in one transaction; DuplicateKey if the
        id exists."""
        ...

    async def get_managed_session(self, session_id: str) -> ManagedSessionRecord | None: ...
    async def list_managed_sessions(self, flt: ManagedFilter) -> list[ManagedSessionRecord]: ...
    async def update_managed_session(
        self,
        session_id: str,
        expected_rev: int,
        changes: Mapping[str, Any],
        events: Sequence[SessionEvent] = (),
    ) -> tuple[ManagedSessionRecord, list[SessionEvent]] | None:
        """Compare-and-set on `rev`, with the events appended in the same transaction."""
        ...

    async def managed_events(self, session_id: str, query: EventQuery) -> list[SessionEvent]: ...
    async def last_event_id(self, session_id: str, kinds: Sequence[str]) -> int:
        """The id of the session's newest event of these kinds (0: none). Managed events
        are numbered in commit order (see update_managed_session), so every one committed
        later has a larger id."""
        ...

    async def event_position(
        self, session_id: str, event_id: str, kinds: Sequence[str]
    ) -> int | None:
        """The id (position) of the session's event of these kinds whose wire id (its data's
        `id`) is `event_id`; None if it has none."""
        ...

    async def due_turns(self, now: int, limit: int = 100) -> list[str]: ...
    async def stranded_turns(self, limit: int = 100) -> list[str]: ...


class GitStore(Protocol):
    """Repositories, their git credential sources, and batch work items (leased like
    sessions: one holder at a time, an epoch per lease, taken again once a lease runs out)."""

    async def insert_repository(self, repo: RepositoryRecord) -> None:
        """Raises DuplicateKey if the organisation has a repository of that key."""
        ...

    async def get_repository(self, repo_id: str) -> RepositoryRecord | None: ...
    async def list_repositories(
        self, org_id: str, keys: Sequence[str] | None = None
    ) -> list[RepositoryRecord]: ...
    async def delete_repository(self, repo_id: str) -> bool: ...
    async def insert_git_source(self, source: GitSourceRecord) -> None:
        """A source made the organisation's default replaces the previous default."""
        ...

    async def get_git_source(self, source_id: str) -> GitSourceRecord | None: ...
    async def list_git_sources(self, org_id: str) -> list[GitSourceRecord]: ...
    async def delete_git_source(self, source_id: str) -> bool: ...
    async def record_git_source_error(self, source_id: str, error: str | None, at: int) -> None: ...

    async def insert_batch_item(self, item: BatchItemRecord) -> None: ...
    async def get_batch_item(self, item_id: str) -> BatchItemRecord | None: ...
    async def list_batch_items(
        self, org_id: str | None, status: str | None, limit: int
    ) -> list[BatchItemRecord]: ...
    async def lease_batch_items(
        self,
        org_id: str,
        capabilities: Sequence[str],
        projects: Sequence[str] | None,
        worker_id: str,
        now: int,
        lease_until: int,
        limit: int,
    ) -> list[BatchItemRecord]: ...
    async def finish_batch_item(
        self,
        item_id: str,
        worker_id: str,
        epoch: int,
        now: int,
        status: str,
        result: dict[str, Any] | None,
    ) -> BatchItemRecord | None: ...
    async def put_project_defaults(self, record: ProjectDefaultsRecord) -> None:
        """Set (replace) a project's defaults; empty `fields` removes them."""
        ...

    async def get_project_defaults(
        self, org_id: str, project: str
    ) -> ProjectDefaultsRecord | None: ...


class IntegrationStore(Protocol):
    """Webhook deliveries and secrets, and the audit log (store/sql_integrations.py)."""

    async def insert_delivery(self, delivery: WebhookDelivery) -> WebhookDelivery | None:
        """None if a delivery with the same (org, provider, delivery id) is stored."""
        ...

    async def find_delivery(
        self, org_id: str, provider: str, delivery_id: str
    ) -> WebhookDelivery | None: ...
    async def get_delivery(self, event_id: str) -> WebhookDelivery | None: ...
    async def lease_delivery(
        self, event_id: str, owner: str, now: int, expires_at: int
    ) -> WebhookDelivery | None: ...
    async def finish_delivery(
        self,
        event_id: str,
        owner: str,
        status: str,
        reason: str | None,
        result: dict[str, Any],
        now: int,
    ) -> bool: ...
    async def due_deliveries(self, now: int, limit: int = 100) -> list[str]: ...
    async def put_webhook_secret(self, record: WebhookSecretRecord) -> None: ...
    async def get_webhook_secret(
        self, org_id: str, provider: str
    ) -> WebhookSecretRecord | None: ...
    async def delete_webhook_secret(self, org_id: str, provider: str) -> bool: ...
    async def insert_trigger(self, rule: TriggerRule) -> None: ...
    async def list_triggers(
        self, org_id: str, provider: str | None = None, event_type: str | None = None
    ) -> list[TriggerRule]: ...
    async def delete_trigger(self, org_id: str, trigger_id: str) -> bool: ...
    async def append_audit(
        self, org_id: str, build: Callable[[int, str], AuditRecord]
    ) -> AuditRecord:
        """Append `build(next sequence, previous entry hash)`; never forks the chain."""
        ...

    async def audit_entries(self, query: AuditQuery) -> list[AuditRecord]: ...
    async def audit_backlog_orgs(self) -> list[str]: ...
    async def append_audit_facts(
        self,
        org_id: str,
        limit: int,
        build: Callable[[list[AuditFact], int, str], list[AuditRecord]],
        *,
        wait: bool = False,
    ) -> int:
        """Append up to `limit` outbox facts of the organisation to its chain, exactly once,
        with whatever entries `build` adds after theirs; the number of facts taken."""
        ...

    async def peek_audit_facts(self, org_id: str, limit: int) -> tuple[list[AuditFact], int, str]:
        """Up to `limit` outbox facts of the organisation, oldest first, with its chain's
        next sequence number and previous entry hash; nothing is taken."""
        ...

    async def commit_audit_facts(
        self, org_id: str, facts: list[AuditFact], records: list[AuditRecord]
    ) -> bool:
        """Take `facts` and append `records` (made from a peek) in one transaction, unless
        the chain or the outbox moved since; False (nothing changed) if they did."""
        ...

    async def audit_waiting(self, at_most: int) -> int: ...
    async def audit_backlog(self) -> list[AuditBacklog]: ...

    async def set_session_audit(self, enabled: bool) -> None: ...


class MemoryStore(Protocol):
    """Agent memory (the MCP memory tools), kept per organisation and project."""

    async def insert_memory(self, memory: MemoryRecord) -> None: ...
    async def search_memories(self, query: MemoryQuery) -> list[MemoryHit]:
        """The memories of the query's organisation and project (and scope, if given) that
        match any of its words, best first, at most `limit`."""
        ...

    async def delete_memory(self, org_id: str, project: str, memory_id: str) -> bool:
        """False if no memory of that id is in that organisation and project."""
        ...


class A2aStore(Protocol):
    """The A2A registry: remote agents per organisation, and the dispatches made to them."""

    async def insert_a2a_agent(self, agent: A2aAgentRecord) -> None:
        """Raises DuplicateKey if the organisation registered that URL already."""
        ...

    async def get_a2a_agent(self, org_id: str, agent_id: str) -> A2aAgentRecord | None: ...
    async def list_a2a_agents(self, org_id: str) -> list[A2aAgentRecord]: ...
    async def update_a2a_agent(
        self, org_id: str, agent_id: str, changes: Mapping[str, Any]
    ) -> A2aAgentRecord | None: ...
    async def delete_a2a_agent(self, org_id: str, agent_id: str) -> bool: ...
    async def insert_a2a_dispatch(self, dispatch: A2aDispatchRecord) -> None: ...
    async def update_a2a_dispatch(self, dispatch_id: str, changes: Mapping[str, Any]) -> None: ...
    async def list_a2a_dispatches(self, flt: DispatchFilter) -> list[A2aDispatchRecord]:
        """Newest first."""
        ...


class Store(
    RunStore,
    ConversationStore,
    ManagedStore,
    GitStore,
    IntegrationStore,
    MemoryStore,
    A2aStore,
    Protocol,
):
    """Persistence for the queue engine. Each method is one atomic step."""

    dialect: str
    observers: StoreObservers  # told of ended sessions and database time (for metrics)

    async def migrate(self) -> None: ...
    async def close(self) -> None: ...

    # -- settings (server-wide secrets and flags) --
    async def get_setting(self, key: str) -> str | None: ...
    async def put_setting_if_absent(self, key: str, value: str) -> str:
        """Store `value` unless the key exists; return whichever value is stored."""
        ...

    async def delete_setting(self, key: str) -> None: ...

    # -- tenancy: organisations, API keys (incl. registration tokens), M2M clients --
    async def insert_org(self, org: OrgRecord) -> None:
        """DuplicateKey if the slug is taken."""
        ...

    async def get_org(self, id_or_slug: str) -> OrgRecord | None: ...
    async def list_orgs(self) -> list[OrgRecord]: ...
    async def insert_api_key(self, key: ApiKeyRecord) -> None: ...
    async def find_api_key(self, token_hash: str) -> ApiKeyRecord | None: ...
    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...
    async def list_api_keys(
        self, org_id: str | None = None, key_type: str | None = None
    ) -> list[ApiKeyRecord]: ...
    async def revoke_api_key(self, key_id: str, now: int) -> bool: ...
    async def insert_m2m_client(self, client: M2MClientRecord) -> None: ...
    async def get_m2m_client(self, client_id: str) -> M2MClientRecord | None: ...
    async def list_m2m_clients(self, org_id: str | None = None) -> list[M2MClientRecord]: ...
    async def revoke_m2m_client(self, client_id: str, now: int) -> bool: ...
    async def put_credential(self, record: CredentialRecord) -> CredentialRecord:
        """Insert, or replace the value of the same (org, project, env, name)."""
        ...

    async def get_credential(self, credential_id: str) -> CredentialRecord | None: ...
    async def list_credentials(
        self, org_id: str | None, project: str | None = None, env_name: str | None = None
    ) -> list[CredentialRecord]:
        """With a project / environment: the credentials that apply to it."""
        ...

    async def delete_credential(self, credential_id: str) -> bool: ...
    async def record_observation(
        self, observation: Observation, alpha_step: float, beta_step: float
    ) -> Posterior:
        """Store a router observation and move its arm's Beta posterior, atomically."""
        ...

    async def posteriors(
        self, org_id: str | None, work_type: str | None = None, providers: Sequence[str] = ()
    ) -> list[Posterior]: ...
    async def observations(
        self,
        org_id: str | None,
        *,
        since: int | None = None,
        until: int | None = None,
        before_id: str | None = None,
        limit: int = 50,
    ) -> list[Observation]:
        """Newest first."""
        ...

    async def insert_mutation(self, mutation: Mutation) -> None: ...
    async def get_mutation(self, mutation_id: str) -> Mutation | None: ...
    async def list_mutations(self, worker_id: str, limit: int) -> list[Mutation]: ...
    async def cancel_mutation(self, mutation_id: str, now: int) -> bool:
        """Cancel a still pending mutation; False if it is not pending."""
        ...

    async def hosts_with_pending_mutations(self) -> set[str]:
        """The workers that have a pending mutation."""
        ...

    async def deliver_mutations(self, worker_id: str, now: int) -> list[Mutation]:
        """Stamp the host's pending mutations delivered, atomically, and return them."""
        ...

    async def revoked_credential_ids(self) -> set[str]:
        """The ids of every revoked key and M2M client."""
        ...

    async def workers_of_registration(self, registration_id: str) -> list[str]:
        """The active workers registered with this registration token."""
        ...

    # -- workers --
    async def insert_worker(self, worker: WorkerRecord) -> None: ...
    async def get_worker(self, worker_id: str) -> WorkerRecord | None: ...
    async def touch_worker(
        self, worker_id: str, now: int, active_count: int | None
    ) -> WorkerRecord | None:
        """Record a heartbeat of an active worker; None if it is unknown or no longer active."""
        ...

    async def mark_undercount(self, worker_id: str, since: int | None) -> None:
        """Set (or clear, None) when the worker began to report fewer sessions than it holds."""
        ...

    async def end_worker(
        self, worker_id: str, status: str, now: int, silent_since: int | None = None
    ) -> bool:
        """Move an active worker to `status` (dead or deregistered); False if it was not active
        (or, with `silent_since`, if it sent a heartbeat at or after that time)."""
        ...

    async def list_workers(
        self, status: str | None = None, org_id: str | None = None
    ) -> list[WorkerRecord]: ...
    async def silent_workers(self, cutoff: int) -> list[str]:
        """Active workers whose last heartbeat is older than `cutoff`."""
        ...

    async def earliest_expiries(self) -> tuple[int | None, int | None]:
        """The earliest lease expiry of a live session, and the oldest last heartbeat of an
        active worker (what the reaper sleeps until)."""
        ...

    async def count_live_sessions(self, worker_id: str) -> int: ...

    # -- sessions --
    async def insert_session(self, session: SessionRecord, event: SessionEvent) -> None:
        """Insert a new session with its first history event; DuplicateKey if the id exists."""
        ...

    async def get_session(self, session_id: str) -> SessionRecord | None: ...
    async def list_sessions(self, flt: SessionFilter) -> list[SessionRecord]: ...
    async def live_sessions_of(self, worker_id: str) -> list[SessionRecord]: ...
    async def issue_sessions(self, org_id: str, issue_id: str, limit: int) -> list[SessionRecord]:
        """The organisation's sessions on the issue, newest (by creation) first."""
        ...

    async def ended_sessions(
        self, org_id: str | None, projects: frozenset[str] | None, since: int, limit: int
    ) -> list[SessionRecord]:
        """Sessions created since `since` that have ended, newest first."""
        ...

    async def session_stats(
        self, org_id: str | None, projects: frozenset[str] | None, since: int
    ) -> SessionStats:
        """Counts and costs of the organisation's sessions (every one's for None); `since`
        bounds the sessions created and completed that the stats count as recent."""
        ...

    async def last_written_at(self, session_id: str, worker_id: str) -> int | None:
        """When `worker_id` last wrote to the session's timeline."""
        ...

    async def count_pending(self, queue: str) -> int: ...
    async def claim_next(
        self,
        queue: str,
        worker_id: str,
        limit: int,
        now: int,
        projects: Sequence[str] | None = None,
        lease_expires_at: int | None = None,
    ) -> list[SessionRecord]:
        """Atomically move up to `limit` pending sessions of `queue` to `claimed` for the
        worker, in (priority, queued_at, id) order, bumping each lease epoch."""
        ...

    async def poll_worker(
        self,
        queue: str,
        worker_id: str,
        limit: int,
        now: int,
        lease_expires_at: int | None,
        inbox_per_lane: int,
    ) -> WorkerPoll | None:
        """A registered worker's poll, in one transaction: claim_next of its projects, never
        more than its free slots (capacity minus its live sessions), then deliver_inbox.
        None if the worker is unknown or not active."""
        ...

    async def claim_session(
        self,
        session_id: str,
        queue: str,
        worker_id: str,
        now: int,
        lease_expires_at: int | None = None,
    ) -> SessionRecord | None:
        """Claim one named pending session; None if it is not pending in `queue`."""
        ...

    async def update_session(
        self,
        session_id: str,
        expect: Expect,
        changes: Mapping[str, Any],
        event: SessionEvent | None,
        audit: Mapping[str, object] | None = None,
    ) -> SessionRecord | None:
        """Apply `changes` only if the session still matches `expect`; None otherwise.
        `audit`: an audit outbox row (audit_triggers.action_row) written with the change."""
        ...

    async def end_held_session(
        self, session_id: str, worker_id: str, changes: Mapping[str, Any], event: SessionEvent
    ) -> SessionRecord | None:
        """A lease holder's terminal report, in one transaction: apply `changes` only if the
        session is live and held by `worker_id`, record `event`, archive the inbox and
        release the file reservations. None (and nothing changed) otherwise."""
        ...

    async def expired_leases(self, now: int, limit: int = 100) -> list[SessionRecord]: ...
    async def session_events(
        self, session_id: str, kinds: Sequence[str] | None = None
    ) -> list[SessionEvent]: ...

    # -- session channel: timeline events --
    async def append_session_event(
        self, event: SessionEvent, expect: Expect | None = None
    ) -> SessionEvent | None:
        """Append an event (returned with its id); with `expect`, only if the session still
        matches it (the lease fence), else None."""
        ...

    async def session_events_after(
        self, session_id: str, after_id: int = 0, limit: int = 500
    ) -> list[SessionEvent]: ...

    # -- issue locks and parked sessions: keyed by (organisation, issue id) --
    async def insert_session_with_issue_lock(
        self,
        session: SessionRecord,
        event: SessionEvent,
        lock_expires_at: int,
        created_by: tuple[str, str] | None = None,
    ) -> SessionRecord:
        """Insert a session, taking its issue's lock; if another live session holds the lock
        the new one is stored `parked` and stops older parked work of its work type.
        `created_by` (actor id, type): its session.created audit fact is written to the
        audit outbox in the same transaction."""
        ...

    async def get_issue_lock(self, org_id: str, issue_id: str) -> IssueLock | None: ...
    async def refresh_issue_lock(
        self,
        org_id: str,
        issue_id: str,
        session_id: str,
        work_type: str | None,
        now: int,
        expires_at: int,
    ) -> bool: ...
    async def stale_issue_locks(self, now: int, limit: int = 100) -> list[IssueLock]: ...
    async def release_issue_lock(
        self,
        org_id: str,
        issue_id: str,
        session_id: str,
        now: int,
        lock_expires_at: int,
        *,
        stale_only: bool = False,
    ) -> SessionRecord | None:
        """Release the session's lock and promote the best parked session of the same
        organisation and issue (returned)."""
        ...

    # -- inbox --
    async def insert_inbox_message(self, message: InboxMessage) -> None: ...
    async def deliver_inbox(
        self, worker_id: str, now: int, per_lane: int = 10
    ) -> list[InboxMessage]: ...
    async def ack_inbox_message(
        self, session_id: str, message_id: str, now: int
    ) -> InboxMessage | None: ...
    async def release_session_holds(self, session_id: str, now: int) -> tuple[int, int]:
        """At a session's end, in one transaction: archive its inbox and release its file
        reservations. Returns (messages archived, files released)."""
        ...

    async def list_inbox(self, session_id: str) -> list[InboxMessage]: ...

    # -- file locks --
    async def reserve_files(
        self,
        repo_id: str,
        session_id: str,
        paths: Sequence[str],
        now: int,
        expires_at: int,
        reason: str | None = None,
        worker_id: str | None = None,
    ) -> tuple[list[str], list[FileLock]]: ...
    async def file_conflicts(
        self, repo_id: str, session_id: str, paths: Sequence[str], now: int
    ) -> list[FileLock]: ...
    async def release_files(
        self, repo_id: str, session_id: str, paths: Sequence[str], worker_id: str | None
    ) -> int:
        """Release the session's reservations of `paths` that `worker_id` may release: its own
        and those made without a worker id; None releases only the latter."""
        ...

    async def release_session_files(self, session_id: str, worker_id: str | None) -> int:
        """`release_files` of every path the session holds."""
        ...

    # -- issue records (the issue-tracker proxy), keyed by (organisation, issue id) --
    async def upsert_issue(self, issue: IssueRecord) -> IssueRecord: ...
    async def find_issue(self, org_id: str, key: str) -> IssueRecord | None: ...
    async def update_issue(
        self, org_id: str, issue_id: str, changes: Mapping[str, Any]
    ) -> IssueRecord | None: ...

    # -- recovery packets --
    async def insert_recovery_packet(self, packet: RecoveryPacket) -> None: ...
    async def recovery_packets(self, session_id: str) -> list[RecoveryPacket]: ...
    # -- projects (environments) --
    async def insert_project(self, project: ProjectRecord) -> None: ...
    async def insert_project_if_missing(self, project: ProjectRecord) -> bool: ...
    async def get_project(self, project_id: str) -> ProjectRecord | None: ...
    async def list_projects(
        self,
        kind: str,
        *,
        include_archived: bool,
        after_id: str | None,
        limit: int,
        created_from: int | None = None,
        created_until: int | None = None,
        org_id: str | None = None,
    ) -> list[ProjectRecord]:
        """Projects of `kind` in id order, after `after_id`, created within
        [`created_from`, `created_until`] (epoch ms, either bound optional), of `org_id`'s
        organisation (None: any)."""
        ...

    async def update_project(
        self, project_id: str, expected_updated_at: int, changes: Mapping[str, Any]
    ) -> ProjectRecord | None:
        """Apply `changes` only if the project's updated_at is still the one read."""
        ...

    async def delete_project(self, project_id: str) -> bool: ...

    # -- environment work queues (a queue's sessions seen as work items) --
    async def count_unfinished(self, queue: str) -> int:
        """Sessions of `queue` that are pending or live."""
        ...

    async def deliver_next(
        self, queue: str, worker_id: str | None, now: int, redeliver_before: int
    ) -> SessionRecord | None:
        """Atomically mark the first pending session of `queue` that was never delivered, or
        delivered at or before `redeliver_before`, as delivered to `worker_id` now."""
        ...

    async def next_redelivery(self, queue: str) -> int | None:
        """The earliest delivery time among the pending sessions of `queue` that were
        delivered (an item becomes deliverable again once a poll's `redeliver_before`
        reaches it); None if no pending session was delivered."""
        ...

    async def deliver_in_environment(
        self, environment_id: str, worker_id: str | None, now: int, redeliver_before: int
    ) -> Delivery:
        """`deliver_next` on the queue of an environment, if it is one (a project of kind
        `environment`); nothing is delivered from the queue of an id that is not."""
        ...

    async def record_polls(self, polls: list[tuple[str, str, int]]) -> None:
        """Note each (queue, worker, polled at) in one transaction, replacing the worker's
        earlier note of the queue."""
        ...

    async def forget_pollers(self, queue: str, before: int) -> None:
        """Drop the poll records of `queue` older than `before`."""
        ...

    async def queue_stats(self, queue: str, recent_since: int, polling_since: int) -> QueueStats:
        """Pending sessions split by delivery after `recent_since`, and pollers since
        `polling_since`."""
        ...

    async def list_queue(
        self, queue: str, *, after_id: str | None, before_id: str | None, limit: int
    ) -> list[SessionRecord]:
        """Up to `limit` sessions of `queue` in ascending id order: the first ones after
        `after_id`, or the last ones before `before_id`."""
        ...

    # -- totals (metrics, console) --
    async def session_counts(self, scope: StatsScope) -> list[SessionCount]:
        """Open sessions (pending, parked, claimed, running, finalizing) in `scope`, counted
        by organisation, queue, project and status, with the oldest queued_at of each group.
        Finished ones are not counted: their number grows with the whole history."""
        ...

    async def worker_counts(self, org_id: str | None) -> list[WorkerCount]:
        """Active workers (of one organisation, or all) counted by organisation and protocol,
        with their summed capacity and reported active count."""
        ...

    async def worker_page(self, page: WorkerPage) -> list[WorkerRecord]:
        """Up to `page.limit` workers after `page.after_id`, in id order, filtered."""
        ...

    async def add_queue_minutes(self, minutes: Sequence[QueueMinute], keep_after: int) -> None:
        """Add per-minute claim counts to the stored ones; forget minutes before
        `keep_after`."""
        ...

    async def queue_minutes(self, scope: StatsScope, since: int) -> list[QueueMinute]:
        """The stored per-minute claim counts in `scope`, from minute `since` on."""
        ...
