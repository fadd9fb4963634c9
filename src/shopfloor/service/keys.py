"""What keys and M2M clients a caller may mint: the scope catalogue and its rules.

User keys carry the scopes of the operator and public APIs (`sessions:read`, …) and the
worker scopes of a registration key; `*` is everything. An organisation-wide key (projects
"all") needs `org_keys:write` (or `*`) to be minted; a key limited to projects may only mint
keys for projects it has itself, and never scopes it lacks."""

from __future__ import annotations

from dataclasses import dataclass

from shopfloor.service.actors import Principal
from shopfloor.service.auth import WORKER_SCOPES
from shopfloor.service.errors import InvalidInput, NotPermitted

USER_SCOPES = (
    "sessions:read",
    "sessions:write",
    "workers:read",
    "workers:write",
    "agents:read",
    "agents:write",
    "org_keys:write",
    "audit:read",
)
KEY_SCOPES = frozenset({"*", *USER_SCOPES, *WORKER_SCOPES})
M2M_SCOPES = frozenset({"*", *USER_SCOPES[:6], "audit:read"})


@dataclass(frozen=True)
class KeyRequest:
    name: str
    projects: list[str] | None  # None: every project of the organisation ("all")
    scopes: list[str] | None  # None: the default for the projects
    expires_at: int | None = None


def key_scopes(who: Principal, request: KeyRequest) -> list[str]:
    """The scopes of the key `who` asks for, checked: defaults are `*` for an organisation-
    wide key and the worker scopes for a key of projects."""
    if request.projects is None:
        if not who.may("org_keys:write"):
            raise NotPermitted("projects: an organisation-wide key needs the org_keys:write scope")
    elif who.projects is not None and not set(request.projects) <= who.projects:
        raise NotPermitted("projects: a key may only mint keys for its own projects")
    scopes = request.scopes
    if scopes is None:
        scopes = ["*"] if request.projects is None else list(WORKER_SCOPES)
    return _grantable(who, scopes, KEY_SCOPES)


def m2m_scopes(who: Principal, scopes: list[str]) -> list[str]:
    if not scopes:
        raise InvalidInput("scopes", "scopes: at least one scope is required")
    if who.projects is not None or not who.may("org_keys:write"):
        raise NotPermitted("an M2M client needs an organisation-wide key with org_keys:write")
    return _grantable(who, scopes, M2M_SCOPES)


def _grantable(who: Principal, scopes: list[str], catalogue: frozenset[str]) -> list[str]:
    """`scopes`, if each is in the catalogue and the caller has it itself."""
    unknown = sorted(set(scopes) - catalogue)
    if unknown:
        raise InvalidInput("scopes", f"scopes: unknown scope {unknown[0]}")
    beyond = [s for s in scopes if not who.may(s)]
    if beyond:
        raise NotPermitted(f"scopes: this key may not grant {beyond[0]}")
    return scopes
