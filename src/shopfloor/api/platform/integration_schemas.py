"""Shapes of the webhook and audit routes (rensei-platform.md §5 and §6), for the OpenAPI
document and the replies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shopfloor.service import audit_chain
from shopfloor.store.integration_records import AuditRecord, TriggerRule


class WebhookPayload(BaseModel):
    """A provider's delivery, as the provider sends it: a JSON object, signed over its raw
    bytes. Linear agent-session deliveries need `agentSession.id` (and, when created, the
    issue's id)."""

    model_config = ConfigDict(extra="allow")


class WebhookAccepted(BaseModel):
    ok: bool
    eventId: str
    correlationId: str
    duplicate: bool | None = Field(None, description="true when the delivery id was seen before")


class WebhookSecretSet(BaseModel):
    secret: str = Field(min_length=16, max_length=512, description="The provider's signing secret")


class WebhookSecretView(BaseModel):
    provider: str
    configured: bool
    ingestUrl: str = Field(description="Where to point the provider: this path, on this server")


class TriggerCreate(BaseModel):
    provider: Literal["linear", "github", "github-actions", "vercel"]
    eventType: str = Field(
        max_length=200, description="e.g. github.pull_request.opened, github.push"
    )
    match: dict[str, Any] = Field(
        default_factory=dict,
        description='Dotted paths the body must hold, e.g. {"repository.full_name": "acme/web"}',
    )
    prompt: str = Field(max_length=20_000, description="{{dotted.path}} takes the body's value")
    workType: str | None = Field(None, max_length=64)
    projectName: str | None = Field(None, max_length=200)
    priority: int | None = Field(None, ge=0, le=10)
    issue: str | None = Field(
        None, max_length=1000, description="The issue of the session, e.g. {{data.id}}"
    )
    cooldownSeconds: int | None = Field(
        None, ge=0, le=30 * 86400, description="No second session for the issue before"
    )


class TriggerView(BaseModel):
    id: str
    orgId: str
    provider: str
    eventType: str
    match: dict[str, Any]
    prompt: str
    workType: str | None
    projectName: str | None
    priority: int | None
    issue: str | None
    cooldownSeconds: int | None
    createdAt: str


class TriggerList(BaseModel):
    triggers: list[TriggerView]


class TriggerDeleted(BaseModel):
    deleted: bool
    id: str


def trigger_view(rule: TriggerRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "orgId": rule.org_id,
        "provider": rule.provider,
        "eventType": rule.event_type,
        "match": rule.match,
        "prompt": rule.prompt_template,
        "workType": rule.work_type,
        "projectName": rule.project,
        "priority": rule.priority,
        "issue": rule.issue_template,
        "cooldownSeconds": rule.cooldown_seconds,
        "createdAt": audit_chain.iso(rule.created_at),
    }


class AuditEvent(BaseModel):
    id: str
    workspaceId: str
    sequenceNumber: int
    eventType: str
    actorId: str
    actorType: str
    entityType: str
    entityId: str
    payload: dict[str, Any]
    prevHash: str
    entryHash: str
    occurredAt: str
    signingKeyId: str
    signature: str = Field(description="Ed25519, base64url (see the README, Audit)")


class AuditEventList(BaseModel):
    events: list[AuditEvent]


class AuditStreamEvent(BaseModel):
    eventId: str
    type: str
    timestamp: str
    orgId: str
    sessionId: str | None
    actorId: str
    payload: dict[str, Any]
    hash: str
    signature: str


class AuditStreamPage(BaseModel):
    events: list[AuditStreamEvent]
    nextCursor: str | None


class AuditVerifyRequest(BaseModel):
    workspaceId: str | None = Field(None, description="Default: the caller's organisation")


class AuditBroken(BaseModel):
    sequenceNumber: int | None
    entryHash: str | None
    reason: str


class AuditVerdict(BaseModel):
    valid: bool
    eventCount: int
    firstSequence: int | None
    lastSequence: int | None
    brokenAt: AuditBroken | None


class AuditJwk(BaseModel):
    model_config = ConfigDict(extra="allow")
    kid: str
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    alg: Literal["EdDSA"]
    use: Literal["sig"]
    x: str


class AuditJwks(BaseModel):
    keys: list[AuditJwk]


def audit_event(record: AuditRecord) -> dict[str, Any]:
    return audit_chain.entry_of(record)


def stream_event(record: AuditRecord) -> dict[str, Any]:
    return {
        "eventId": record.id,
        "type": record.event_type,
        "timestamp": audit_chain.iso(record.occurred_at),
        "orgId": record.org_id,
        "sessionId": record.entity_id if record.entity_type == "session" else None,
        "actorId": record.actor_id,
        "payload": audit_chain.event_of(record)["payload"],
        "hash": "sha256:" + record.entry_hash,
        "signature": "ed25519:" + record.signature,
    }
