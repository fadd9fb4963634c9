"""Trigger rules: what a GitHub, GitHub Actions or Vercel delivery (or a Linear one other than
an agent session's) does, since the platform routes those to workflows without fixing their
meaning. An organisation's rule names a provider, an event type (`github.pull_request.opened`)
and fields the body must hold (`{"repository.full_name": "acme/web"}`); a delivery it matches
queues a session with the rule's prompt template rendered from the body. The session's id
derives from the delivery and the rule, so processing a delivery twice queues it once."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import uuid
from typing import Any

from shopfloor.clock import Clock
from shopfloor.service.audit import TRIGGER_CREATED, TRIGGER_DELETED, AuditLog, Who
from shopfloor.service.dispatch import Dispatcher, NewSession, af_queue
from shopfloor.service.errors import Conflict, InvalidInput
from shopfloor.service.linear_events import PROCESSED, Outcome, skip
from shopfloor.service.webhook_signatures import PROVIDERS
from shopfloor.store.integration_records import TriggerRule, WebhookDelivery
from shopfloor.store.records import SessionFilter

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")
MAX_TEMPLATE = 20_000
MAX_PROMPT = 100_000
MAX_MATCHES = 20
MAX_RULES_PER_ORG = 200


def dig(body: Any, path: str) -> Any:
    for step in path.split("."):
        if isinstance(body, dict):
            body = body.get(step)
        elif isinstance(body, list) and step.isdigit() and int(step) < len(body):
            body = body[int(step)]
        else:
            return None
    return body


def render(template: str, body: dict[str, Any]) -> str:
    def value(found: re.Match[str]) -> str:
        got = dig(body, found.group(1))
        if got is None:
            return ""
        return got if isinstance(got, str) else json.dumps(got)

    return PLACEHOLDER.sub(value, template)[:MAX_PROMPT]


def matches(rule: TriggerRule, body: dict[str, Any]) -> bool:
    return all(dig(body, path) == wanted for path, wanted in rule.match.items())


class Triggers:
    def __init__(self, dispatcher: Dispatcher, clock: Clock, audit: AuditLog) -> None:
        self.dispatcher = dispatcher
        self.store = dispatcher.store
        self.clock = clock
        self.audit = audit

    async def create(self, rule: TriggerRule, who: Who) -> TriggerRule:
        _check(rule)
        if len(await self.store.list_triggers(rule.org_id)) >= MAX_RULES_PER_ORG:
            raise Conflict(f"An organisation has at most {MAX_RULES_PER_ORG} trigger rules")
        made = dataclasses.replace(
            rule, id="trg_" + uuid.uuid4().hex, created_at=self.clock.now_ms()
        )
        await self.store.insert_trigger(made)
        details = {"provider": made.provider, "eventType": made.event_type}
        await self.audit.record(made.org_id, TRIGGER_CREATED, who, ("trigger", made.id), details)
        return made

    async def delete(self, org_id: str, trigger_id: str, who: Who) -> bool:
        deleted = await self.store.delete_trigger(org_id, trigger_id)
        if deleted:
            await self.audit.record(org_id, TRIGGER_DELETED, who, ("trigger", trigger_id), {})
        return deleted

    async def list(self, org_id: str) -> list[TriggerRule]:
        return await self.store.list_triggers(org_id)

    async def handle(self, delivery: WebhookDelivery) -> Outcome:
        rules = await self.store.list_triggers(
            delivery.org_id, delivery.provider, delivery.event_type
        )
        matching = [rule for rule in rules if matches(rule, delivery.body)]
        if not matching:
            return skip("no_trigger_rule")
        queued = [s for s in [await self._queue(r, delivery) for r in matching] if s]
        if not queued:
            return skip("cooldown")
        return Outcome(PROCESSED, result={"action": "queued", "sessionIds": queued})

    async def _cooling(self, rule: TriggerRule, issue: str, session_id: str) -> bool:
        if not rule.cooldown_seconds:
            return False
        since = self.clock.now_ms() - rule.cooldown_seconds * 1000
        recent = await self.store.list_sessions(
            SessionFilter(issue_id=issue, org_id=rule.org_id, limit=100)
        )
        return any(
            s.extra.get("triggerId") == rule.id and s.created_at > since and s.id != session_id
            for s in recent
        )

    async def _queue(self, rule: TriggerRule, delivery: WebhookDelivery) -> str | None:
        """The session queued (or queued before, by an earlier attempt at this delivery), or
        None when the rule's cooldown for the issue has not passed."""
        seed = f"{delivery.id}:{rule.id}".encode()
        session_id = "sess_" + hashlib.sha256(seed).hexdigest()[:32]
        issue = render(rule.issue_template, delivery.body)[:200] if rule.issue_template else None
        if issue and await self._cooling(rule, issue, session_id):
            return None
        with contextlib.suppress(Conflict):  # Conflict: queued by an earlier attempt
            await self.dispatcher.create_session(
                NewSession(
                    queue=af_queue(delivery.org_id),
                    session_id=session_id,
                    prompt=render(rule.prompt_template, delivery.body),
                    work_type=rule.work_type,
                    priority=rule.priority,
                    project=rule.project,
                    issue_id=issue or None,
                    extra={
                        "source": f"{delivery.provider}-webhook",
                        "webhookEventId": delivery.id,
                        "correlationId": delivery.correlation_id,
                        "triggerId": rule.id,
                    },
                    org_id=delivery.org_id,
                    created_by=Who(delivery.provider, "webhook"),
                )
            )
        return session_id


def _check(rule: TriggerRule) -> None:
    if rule.provider not in PROVIDERS:
        raise InvalidInput("provider", "provider must be one of " + ", ".join(PROVIDERS))
    if not rule.event_type.startswith(rule.provider + ".") or len(rule.event_type) > 200:
        raise InvalidInput("eventType", f"eventType must start with {rule.provider}.")
    if not rule.prompt_template.strip() or len(rule.prompt_template) > MAX_TEMPLATE:
        raise InvalidInput("prompt", f"prompt must be 1-{MAX_TEMPLATE} characters")
    if rule.issue_template is not None and not 0 < len(rule.issue_template) <= 1000:
        raise InvalidInput("issue", "issue must be a template of 1-1000 characters")
    if len(rule.match) > MAX_MATCHES or any(len(k) > 200 for k in rule.match):
        raise InvalidInput("match", f"match takes at most {MAX_MATCHES} paths of 200 characters")
