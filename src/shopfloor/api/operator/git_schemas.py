"""Request and response models of the operator API's repositories, git credential sources and
batch items. A source's secret goes in and never comes out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool, StrictInt, model_validator

from shopfloor.api.operator.schemas import BoundedObject, RequestBody, ShortText, Text
from shopfloor.api.timefmt import iso
from shopfloor.store.git_records import BatchItemRecord, GitSourceRecord, RepositoryRecord

MAX_SECRET = 16 * 1024  # an RSA private key in PEM is about 1.7 KiB (2048 bits) to 3.3 (4096)
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last time ISO 8601 writes


class RepositoryCreate(RequestBody):
    url: Text = Field(min_length=1, max_length=500, description="https clone URL")
    projectName: ShortText | None = Field(None, description="Limit it to one project")
    sourceId: ShortText | None = Field(
        None, description="Its credential source (default: the organisation's default source)"
    )
    orgId: ShortText | None = Field(None, description="The admin key's choice of organisation")


class RepositoryView(BaseModel):
    id: str
    orgId: str
    url: str
    provider: str
    projectName: str | None
    sourceId: str | None
    createdAt: str

    @classmethod
    def of(cls, r: RepositoryRecord) -> RepositoryView:
        return cls(
            id=r.id,
            orgId=r.org_id,
            url=r.url,
            provider=r.provider,
            projectName=r.project,
            sourceId=r.source_id,
            createdAt=iso(r.created_at) or "",
        )


class Deleted(BaseModel):
    id: str
    deleted: bool


class GitSourceCreate(RequestBody):
    kind: Literal["static", "github_app"]
    name: ShortText
    token: Text | None = Field(None, min_length=1, max_length=MAX_SECRET, description="static")
    expiresAt: StrictInt | None = Field(
        None, ge=0, le=MAX_EPOCH_MS, description="static: the token's expiry (epoch ms)"
    )
    appId: Text | None = Field(
        None, pattern=r"^[0-9]{1,20}$", description="github_app: the App's id"
    )
    installationId: Text | None = Field(
        None, pattern=r"^[0-9]{1,20}$", description="github_app: its installation"
    )
    privateKey: Text | None = Field(
        None, min_length=1, max_length=MAX_SECRET, description="github_app: PEM private key"
    )
    orgDefault: StrictBool = Field(
        False, description="Use it for the organisation's repositories that name no source"
    )
    orgId: ShortText | None = None

    @model_validator(mode="after")
    def _complete(self) -> GitSourceCreate:
        if self.kind == "static" and self.token is None:
            raise ValueError("token: is required for a static source")
        if self.kind == "github_app":
            for name in ("appId", "installationId", "privateKey"):
                if getattr(self, name) is None:
                    raise ValueError(f"{name}: is required for a github_app source")
            if not str(self.installationId).isdigit() or not str(self.appId).isdigit():
                raise ValueError("appId and installationId must be numbers")
        return self


class GitSourceView(BaseModel):
    id: str
    orgId: str
    kind: str
    name: str
    orgDefault: bool
    appId: str | None
    installationId: str | None
    expiresAt: str | None
    lastError: str | None = Field(description="The last failure to get a credential")
    lastErrorAt: str | None
    createdAt: str

    @classmethod
    def of(cls, s: GitSourceRecord) -> GitSourceView:
        return cls(
            id=s.id,
            orgId=s.org_id,
            kind=s.kind,
            name=s.name,
            orgDefault=s.org_default,
            appId=s.app_id,
            installationId=s.installation_id,
            expiresAt=iso(s.expires_at),
            lastError=s.last_error,
            lastErrorAt=iso(s.last_error_at),
            createdAt=iso(s.created_at) or "",
        )


class BatchItemCreate(RequestBody):
    kind: ShortText
    capability: ShortText
    payload: BoundedObject
    projectName: ShortText | None = None
    orgId: ShortText | None = None


class BatchItemView(BaseModel):
    id: str
    orgId: str
    kind: str
    capability: str
    payload: dict[str, Any]
    status: Literal["queued", "leased", "completed", "failed"]
    projectName: str | None
    attempts: int
    workerId: str | None
    leaseEpoch: int
    leaseExpiresAt: str | None
    result: dict[str, Any] | None
    createdAt: str
    finishedAt: str | None

    @classmethod
    def of(cls, b: BatchItemRecord) -> BatchItemView:
        return cls(
            id=b.id,
            orgId=b.org_id,
            kind=b.kind,
            capability=b.capability,
            payload=b.payload,
            status=b.status,  # type: ignore[arg-type]
            projectName=b.project,
            attempts=b.attempts,
            workerId=b.worker_id,
            leaseEpoch=b.lease_epoch,
            leaseExpiresAt=iso(b.lease_expires_at),
            result=b.result,
            createdAt=iso(b.created_at) or "",
            finishedAt=iso(b.finished_at),
        )
