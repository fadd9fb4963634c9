"""Records of repositories, the sources of their git credentials, batch work items, and the
work-item fields a project's sessions get by default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Batch item states: queued (or leased with its lease run out: it is taken again), leased to
# one worker, and the two ends its worker reports.
BATCH_QUEUED = "queued"
BATCH_LEASED = "leased"
BATCH_COMPLETED = "completed"
BATCH_FAILED = "failed"


@dataclass(frozen=True)
class RepositoryRecord:
    id: str  # repo_<hex>
    org_id: str
    url: str  # the clone URL, as the operator gave it
    key: str  # host/owner/name, lower case: what a session's `repository` is matched by
    provider: str  # github | generic
    created_at: int
    project: str | None = None
    source_id: str | None = None  # its credential source (else the organisation's default)


@dataclass(frozen=True)
class GitSourceRecord:
    """Where a repository's short-lived credentials come from: a static token the operator
    gave, or a GitHub App whose installation tokens the server mints. `sealed_secret` (the
    token, or the App's private key) is sealed by the secret box for `git-source:<id>`."""

    id: str  # gcs_<hex>
    org_id: str
    kind: str  # static | github_app
    name: str
    sealed_secret: str
    created_at: int
    org_default: bool = False  # used for the organisation's repositories that name none
    app_id: str | None = None
    installation_id: str | None = None
    expires_at: int | None = None  # a static token's configured expiry (epoch ms)
    last_error: str | None = None  # the last failure to get a credential (never the secret)
    last_error_at: int | None = None


@dataclass(frozen=True)
class BatchItemRecord:
    id: str  # bat_<hex>
    org_id: str
    kind: str
    capability: str  # only workers registered with it receive the item
    payload: dict[str, Any]
    status: str
    created_at: int
    project: str | None = None
    attempts: int = 0
    worker_id: str | None = None
    lease_epoch: int = 0
    lease_expires_at: int | None = None
    result: dict[str, Any] | None = None
    finished_at: int | None = None


@dataclass(frozen=True)
class ProjectDefaultsRecord:
    org_id: str
    project: str
    fields: dict[str, Any]  # work-item fields by their wire name (resolvedProfile, modelProfile)
    updated_at: int
