"""Webhook intake (rensei-platform.md §5): a delivery is verified (HMAC over the raw body),
stored, answered at once, and processed afterwards as leased work: the process that stored
it starts at once, and any process's upkeep takes over a delivery whose processing never
finished (its process crashed after answering), so none is lost and, since each outcome is
idempotent (linear_events.py), none acts twice. A delivery the provider sends again (same
delivery id) is stored once; the answer says `duplicate`."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shopfloor.clock import Clock
from shopfloor.service.audit import (
    WEBHOOK_INGEST,
    WEBHOOK_PROCESSED,
    WEBHOOK_SECRET_DELETED,
    WEBHOOK_SECRET_SET,
    AuditLog,
    Who,
)
from shopfloor.service.errors import DomainError, InvalidInput
from shopfloor.service.linear_events import LinearEvents, Outcome, missing_field, skip
from shopfloor.service.notifier import cancel_wait
from shopfloor.service.secret_box import SecretBox
from shopfloor.service.triggers import Triggers
from shopfloor.service.webhook_signatures import LINEAR, SCHEMES, signature_valid
from shopfloor.store import Store
from shopfloor.store.integration_records import WebhookDelivery, WebhookSecretRecord
from shopfloor.store.tenancy_records import DEFAULT_ORG

log = logging.getLogger("shopfloor.webhooks")
MAX_SECRET_LENGTH = 512
# A delivery whose processing failed this many times (each retried after its lease lapsed)
# is given up, skipped with the reason `failed`, instead of being retried for ever.
MAX_ATTEMPTS = 5


class BadSignature(DomainError):
    """Missing or invalid signature (or a stale Linear timestamp): 401."""


class NotConfigured(DomainError):
    """No secret to verify the provider's deliveries with: 503."""


@dataclass(frozen=True)
class Accepted:
    event_id: str
    correlation_id: str
    duplicate: bool


@dataclass(frozen=True)
class WebhookSettings:
    secrets: Mapping[str, str | None]  # the default organisation's, by provider
    skip_verification: bool = False  # development only: accept unsigned deliveries
    timestamp_tolerance_ms: int = 60_000
    lease_ms: int = 30_000
    allowed_projects: frozenset[str] | None = None


class Webhooks:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        audit: AuditLog,
        linear: LinearEvents,
        triggers: Triggers,
        box: SecretBox,
        settings: WebhookSettings,
    ) -> None:
        self.store = store
        self.clock = clock
        self.audit = audit
        self.linear = linear
        self.triggers = triggers
        self.box = box
        self.settings = settings
        self.owner = "p_" + uuid.uuid4().hex[:16]
        self._tasks: set[asyncio.Task[None]] = set()

    # -- intake --

    async def verify(
        self, provider: str, org_ref: str | None, body: bytes, headers: Mapping[str, str]
    ) -> str:
        """The organisation a correctly signed delivery is for. The default organisation's
        secret is in the settings; another organisation (named by `?org=`) has its own."""
        if provider not in SCHEMES:
            raise BadSignature("provider: must be one of " + ", ".join(SCHEMES))
        org_id, secret = await self._secret(provider, org_ref)
        if secret is None and self.settings.skip_verification and org_id == DEFAULT_ORG:
            return org_id
        if not any(h in headers for h in SCHEMES[provider].headers):
            raise BadSignature("The delivery carries no signature")
        if secret is None:
            raise NotConfigured("Webhook signature verification not configured")
        if not signature_valid(provider, secret, body, headers):
            raise BadSignature("Invalid signature")
        return org_id

    async def _secret(self, provider: str, org_ref: str | None) -> tuple[str, str | None]:
        if org_ref is None:
            configured = self.settings.secrets.get(provider)
            if configured:
                return DEFAULT_ORG, configured
            org_id = DEFAULT_ORG
        else:
            org = await self.store.get_org(org_ref)
            if org is None:  # as a wrong signature: no one learns which organisations exist
                raise BadSignature("Invalid signature")
            org_id = org.id
        stored = await self.store.get_webhook_secret(org_id, provider)
        if stored is None:
            return org_id, None
        return org_id, self.box.open(stored.ciphertext, _secret_context(org_id, provider))

    async def accept(
        self,
        provider: str,
        org_id: str,
        body: dict[str, Any],
        raw: bytes,
        headers: Mapping[str, str],
    ) -> Accepted:
        """Store a verified delivery (or find it stored) and start its processing."""
        if provider == LINEAR:
            self._check_linear(body)
        scheme = SCHEMES[provider]
        delivery_id = _header(headers, scheme.delivery_header) or _body_id(provider, body)
        delivery = WebhookDelivery(
            id="whd_" + uuid.uuid4().hex,
            org_id=org_id,
            provider=provider,
            delivery_id=delivery_id or "sha256:" + hashlib.sha256(raw).hexdigest(),
            event_type=event_type(provider, body, _header(headers, scheme.event_header)),
            correlation_id="cor_" + uuid.uuid4().hex,
            body=body,
            received_at=self.clock.now_ms(),
        )
        stored = await self.store.insert_delivery(delivery)
        if stored is None:
            found = await self.store.find_delivery(org_id, provider, delivery.delivery_id)
            if found is None:  # stored and gone at once: cannot happen, but never a 500
                raise InvalidInput("body", "body: the delivery could not be stored")
            return Accepted(found.id, found.correlation_id, True)
        await self.audit.record(
            org_id,
            WEBHOOK_INGEST,
            Who(provider, "webhook"),
            ("webhook_delivery", delivery.id),
            {
                "provider": provider,
                "deliveryId": delivery.delivery_id,
                "eventType": delivery.event_type,
                "correlationId": delivery.correlation_id,
            },
        )
        self._start(delivery.id)
        return Accepted(delivery.id, delivery.correlation_id, False)

    def _check_linear(self, body: dict[str, Any]) -> None:
        missing = missing_field(body)
        if missing is not None:
            raise InvalidInput(missing, f"{missing} is required")
        stamp = body.get("webhookTimestamp")
        if stamp is None:
            return
        tolerance = self.settings.timestamp_tolerance_ms
        if not isinstance(stamp, int) or abs(self.clock.now_ms() - stamp) > tolerance:
            raise BadSignature("webhookTimestamp is outside the allowed clock skew")

    # -- processing --

    def _start(self, event_id: str) -> None:
        task = asyncio.create_task(self._process_logged(event_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process_logged(self, event_id: str) -> None:
        try:
            await self.process(event_id)
        except Exception:  # the lease lapses and the upkeep tries again
            log.exception("webhook delivery %s failed; it will be retried", event_id)

    async def process(self, event_id: str) -> bool:
        """Process a delivery if no other process holds it; True if this call finished it."""
        now = self.clock.now_ms()
        delivery = await self.store.lease_delivery(
            event_id, self.owner, now, now + self.settings.lease_ms
        )
        if delivery is None:
            return False
        if delivery.attempts > MAX_ATTEMPTS:
            outcome = skip(f"failed after {MAX_ATTEMPTS} attempts")
        else:
            outcome = await self._outcome(delivery)
        done = await self.store.finish_delivery(
            event_id,
            self.owner,
            outcome.status,
            outcome.reason,
            outcome.result,
            self.clock.now_ms(),
        )
        if done:
            await self.audit.record(
                delivery.org_id,
                WEBHOOK_PROCESSED,
                Who(delivery.provider, "webhook"),
                ("webhook_delivery", delivery.id),
                {"status": outcome.status, "reason": outcome.reason, **outcome.result},
            )
        return done

    async def _outcome(self, delivery: WebhookDelivery) -> Outcome:
        if delivery.provider == LINEAR and delivery.body.get("type") == "AgentSessionEvent":
            return await self.linear.handle(delivery)
        # Everything else does what the organisation's trigger rules say.
        return await self.triggers.handle(delivery)

    async def process_due(self) -> int:
        """Process the deliveries no live lease covers; how many this call finished."""
        finished = 0
        for event_id in await self.store.due_deliveries(self.clock.now_ms()):
            finished += await self.process(event_id)
        return finished

    async def run_upkeep(self, interval_seconds: float) -> None:
        while True:
            try:
                await self.process_due()
            except Exception:
                log.exception("webhook upkeep pass failed")
            await asyncio.sleep(interval_seconds)

    async def settle(self) -> None:
        """Wait for the processing this process started (tests; a clean stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            await cancel_wait(task)

    # -- secrets of organisations --

    async def set_secret(self, org_id: str, provider: str, secret: str, who: Who) -> None:
        if not 16 <= len(secret) <= MAX_SECRET_LENGTH:
            raise InvalidInput("secret", f"secret must be 16-{MAX_SECRET_LENGTH} characters")
        sealed = self.box.seal(secret, _secret_context(org_id, provider))
        record = WebhookSecretRecord(org_id, provider, sealed, self.clock.now_ms())
        await self.store.put_webhook_secret(record)
        entity = ("webhook_secret", f"{org_id}/{provider}")
        await self.audit.record(org_id, WEBHOOK_SECRET_SET, who, entity, {"provider": provider})

    async def delete_secret(self, org_id: str, provider: str, who: Who) -> bool:
        deleted = await self.store.delete_webhook_secret(org_id, provider)
        if deleted:
            entity = ("webhook_secret", f"{org_id}/{provider}")
            await self.audit.record(
                org_id, WEBHOOK_SECRET_DELETED, who, entity, {"provider": provider}
            )
        return deleted


def event_type(provider: str, body: dict[str, Any], header: str | None) -> str:
    """A delivery's CloudEvent-style type: `linear.agent_session.created`, `github.push`,
    `github.pull_request.opened`, `vercel.deployment.succeeded`…"""
    action = body.get("action") if isinstance(body.get("action"), str) else None
    if provider == LINEAR:
        kind = str(body.get("type") or header or "unknown")
        name = "agent_session" if kind == "AgentSessionEvent" else _snake(kind)
    elif provider == "vercel":
        name, action = str(body.get("type") or "unknown"), None
    else:
        name = header or "unknown"
    text = f"{provider}.{name}" + (f".{action}" if action else "")
    return text[:200]


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _header(headers: Mapping[str, str], name: str | None) -> str | None:
    value = headers.get(name) if name else None
    return value[:200] if value else None


def _body_id(provider: str, body: dict[str, Any]) -> str | None:
    found = body.get("id") if provider == "vercel" else None
    return found[:200] if isinstance(found, str) and found else None


def _secret_context(org_id: str, provider: str) -> str:
    """What a stored webhook secret is sealed for: another row's value does not open here."""
    return f"webhook-secret:{org_id}:{provider}"
