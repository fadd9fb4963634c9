"""Records of the tenancy: organisations, API keys and machine-to-machine clients."""

from __future__ import annotations

from dataclasses import dataclass, field

# Everything made before organisations existed, and everything made with the static worker
# key or for no organisation in particular, belongs to this one.
DEFAULT_ORG = "org_default"

# Key types: a person's or a script's key (operator and public APIs), and a worker
# registration key (what `shopfloor tokens create` mints: rsk_live_ org-wide, rsp_live_ for
# one project).
USER_KEY = "user"
REGISTRATION_KEY = "worker_registration"


@dataclass(frozen=True)
class OrgRecord:
    id: str
    slug: str
    name: str
    created_at: int


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    org_id: str
    key_type: str
    token_hash: str  # SHA-256 of the secret, which is shown once and never stored
    key_prefix: str  # the secret's first characters, for display (rsk_live_e4f2)
    created_at: int
    name: str | None = None
    projects: list[str] | None = None  # None: every project of the org
    scopes: list[str] = field(default_factory=list)
    expires_at: int | None = None
    revoked_at: int | None = None

    @property
    def kind(self) -> str:
        """`rsk` or `rsp`: the family of the secret's prefix."""
        return self.key_prefix[:3]

    @property
    def project(self) -> str | None:
        """The one project of a key limited to exactly one (an `rsp_live_` token's)."""
        return self.projects[0] if self.projects and len(self.projects) == 1 else None

    def usable_at(self, now: int) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class M2MClientRecord:
    id: str  # the client_id, m2m_<32 hex>
    org_id: str
    name: str
    secret_hash: str
    created_at: int
    scopes: list[str] = field(default_factory=list)
    revoked_at: int | None = None


ALL = ""  # a credential's project or environment: every one


@dataclass(frozen=True)
class CredentialRecord:
    """One secret of an organisation's vault; `ciphertext` only (service/vault.py)."""

    id: str
    org_id: str
    project: str  # ALL: every project of the organisation
    env_name: str  # ALL: every environment
    name: str  # the environment variable it becomes
    ciphertext: str
    created_at: int
    updated_at: int
