"""Shapes of the platform's authentication routes: request parsing (each refusal a 400 naming
the field) and the replies, which follow rensei-platform.md §3."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from shopfloor.api.envelope import ApiError
from shopfloor.api.timefmt import iso
from shopfloor.service.keys import KeyRequest
from shopfloor.store.tenancy_records import ApiKeyRecord, M2MClientRecord

MAX_PROJECTS = 100
MAX_NAME = 200


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    projects: Literal["all"] | list[str] = Field(
        "all", description='"all" (the whole organisation) or the projects the key may touch'
    )
    scopes: list[str] | None = Field(
        None, description="Default: `*` for an organisation-wide key, the worker scopes else"
    )
    keyType: Literal["user", "worker_registration"] | None = Field(
        None, description="The older prose shape; `worker_registration` keys register workers"
    )
    expiresAt: int | None = Field(None, description="Epoch milliseconds; never, if absent")


class KeyView(BaseModel):
    id: str
    orgId: str
    name: str | None
    keyPrefix: str = Field(description="The secret's first characters, for display")
    keyType: str
    scopes: list[str]
    projectIds: Literal["all"] | list[str]
    createdAt: str
    expiresAt: str | None
    revokedAt: str | None


class MintedKey(KeyView):
    fullKey: str = Field(description="The secret: shown in this reply only")


class KeyMinted(BaseModel):
    key: MintedKey
    keyId: str
    token: str
    name: str | None
    keyType: str
    scopes: list[str]
    createdAt: str


class KeyList(BaseModel):
    keys: list[KeyView]


class KeyRevoked(BaseModel):
    revoked: bool
    keyId: str


class M2MClientCreate(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    scopes: list[str] = Field(
        description="workers:read, workers:write, sessions:read, sessions:write, agents:read, "
        "agents:write or *"
    )
    orgId: str | None = Field(None, description="The admin key: the organisation (id or slug)")


class M2MClientView(BaseModel):
    clientId: str
    name: str
    orgId: str
    scopes: list[str]
    createdAt: int = Field(description="Epoch milliseconds")
    revokedAt: int | None


class MintedClient(M2MClientView):
    clientSecret: str = Field(description="The secret: shown in this reply only")


class M2MClientMinted(BaseModel):
    client: MintedClient


class M2MClientList(BaseModel):
    clients: list[M2MClientView]


class M2MClientRevoked(BaseModel):
    revoked: bool
    clientId: str


# -- parsing --


def key_request(body: dict[str, Any]) -> KeyRequest:
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise ApiError(400, f"name: a string of 1-{MAX_NAME} characters is required")
    projects = body.get("projects", "all")
    if projects != "all" and not _names(projects):
        raise ApiError(
            400, f'projects: "all" or a non-empty list of at most {MAX_PROJECTS} project names'
        )
    scopes = body.get("scopes")
    if scopes is not None and not _names(scopes):
        raise ApiError(400, "scopes: a non-empty list of scope names")
    key_type = body.get("keyType")
    if key_type not in (None, "user", "worker_registration"):
        raise ApiError(400, 'keyType: "user" or "worker_registration"')
    expires = body.get("expiresAt")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)):
        raise ApiError(400, "expiresAt: epoch milliseconds, an integer")
    return KeyRequest(
        name=name,
        projects=None if projects == "all" else list(dict.fromkeys(projects)),
        scopes=None if scopes is None else list(dict.fromkeys(scopes)),
        expires_at=expires,
    )


def m2m_request(body: dict[str, Any]) -> tuple[str, list[str], str | None]:
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise ApiError(400, f"name: a string of 1-{MAX_NAME} characters is required")
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not _names(scopes):
        raise ApiError(400, "scopes: a non-empty list of scope names")
    org = body.get("orgId")
    if org is not None and not isinstance(org, str):
        raise ApiError(400, "orgId: an organisation id or slug")
    return name, list(dict.fromkeys(scopes)), org


def _names(value: Any) -> bool:
    return (
        isinstance(value, list)
        and 0 < len(value) <= MAX_PROJECTS
        and all(isinstance(v, str) and 0 < len(v) <= MAX_NAME for v in value)
    )


# -- replies --


def key_view(k: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": k.id,
        "orgId": k.org_id,
        "name": k.name,
        "keyPrefix": k.key_prefix,
        "keyType": k.key_type,
        "scopes": k.scopes,
        "projectIds": "all" if k.projects is None else k.projects,
        "createdAt": iso(k.created_at),
        "expiresAt": iso(k.expires_at),
        "revokedAt": iso(k.revoked_at),
    }


def m2m_view(c: M2MClientRecord) -> dict[str, Any]:
    return {
        "clientId": c.id,
        "name": c.name,
        "orgId": c.org_id,
        "scopes": c.scopes,
        "createdAt": c.created_at,
        "revokedAt": c.revoked_at,
    }
