"""What a Linear delivery does (rensei-platform.md §5.2, the AgentFactory receiver's rules):
an agent session created queues a session on the issue, a prompt becomes a directive to the
running session (or queues the session again, at priority 2, if it has ended), a stop signal
or a session updated to completed/failed stops it. Everything else is stored and skipped.
Each outcome is idempotent, so a delivery processed twice (its lease lapsed mid-way) acts
once: session and message ids derive from the Linear session and the delivery."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shopfloor.service import issue_failures
from shopfloor.service.audit import Who
from shopfloor.service.dispatch import Dispatcher, NewSession, af_queue
from shopfloor.service.errors import Conflict
from shopfloor.store.integration_records import WebhookDelivery

PROCESSED = "processed"
SKIPPED = "skipped"
PROMPTED_PRIORITY = 2
# A session id is 64 characters at most: a Linear session id (a UUID) leaves room for the
# suffix of a session queued again by a prompt.
MAX_SESSION_ID = 50
MAX_ISSUE_FIELD = 200
TERMINAL_ISSUE_STATES = ("completed", "canceled")
ENDED_SESSION_STATES = ("complete", "completed", "error", "failed")
# A word of the mention that names the work, before the issue's state is asked.
MENTION_WORK_TYPES = (
    ("research", "research"),
    ("acceptance", "acceptance"),
    ("accept", "acceptance"),
    ("qa", "qa"),
    ("refine", "refinement"),
    ("backlog", "backlog-creation"),
)
STATE_WORK_TYPES = {
    "icebox": "research",
    "backlog": "development",
    "started": "inflight",
    "in progress": "inflight",
    "finished": "qa",
    "delivered": "acceptance",
}


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


def skip(reason: str) -> Outcome:
    return Outcome(SKIPPED, reason)


def missing_field(body: dict[str, Any]) -> str | None:
    """The field an agent-session delivery lacks (answered 400 before it is stored)."""
    if body.get("type") != "AgentSessionEvent":
        return None
    session = body.get("agentSession")
    if not isinstance(session, dict):
        return "agentSession"
    if not _short(session.get("id"), MAX_SESSION_ID):
        return "agentSession.id"
    if body.get("action") == "created" and not _short(_issue_id(session), MAX_ISSUE_FIELD):
        return "agentSession.issue.id"
    issue = session.get("issue")
    if isinstance(issue, dict) and not _short(issue.get("identifier") or "-", MAX_ISSUE_FIELD):
        return "agentSession.issue.identifier"
    return None


def _short(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _issue_id(session: dict[str, Any]) -> str | None:
    issue = session.get("issue")
    found = issue.get("id") if isinstance(issue, dict) else session.get("issueId")
    return found if isinstance(found, str) and found else None


def _dig(value: Any, *path: str) -> Any:
    for step in path:
        value = value.get(step) if isinstance(value, dict) else None
    return value


def work_type(prompt: str | None, state_name: str | None) -> str:
    words = (prompt or "").lower()
    for word, kind in MENTION_WORK_TYPES:
        if word in words.split():
            return kind
    return STATE_WORK_TYPES.get((state_name or "").lower(), "development")


class LinearEvents:
    def __init__(
        self,
        dispatcher: Dispatcher,
        allowed_projects: frozenset[str] | None,
        session_cap: int = 0,
    ) -> None:
        self.dispatcher = dispatcher
        self.allowed_projects = allowed_projects
        self.session_cap = session_cap

    async def handle(self, delivery: WebhookDelivery) -> Outcome:
        body = delivery.body
        if body.get("type") != "AgentSessionEvent":
            return skip("no_trigger_rule")
        action = body.get("action")
        if action == "created":
            return await self._created(delivery)
        if action == "prompted":
            return await self._prompted(delivery)
        if action == "updated":
            return await self._updated(delivery)
        return skip("unknown_action")

    async def _created(self, delivery: WebhookDelivery) -> Outcome:
        body = delivery.body
        session: dict[str, Any] = body["agentSession"]
        found = session.get("issue")
        issue: dict[str, Any] = found if isinstance(found, dict) else {}
        if issue.get("parentId") or issue.get("parent"):
            return skip("sub_issue_managed_by_parent")
        if _dig(issue, "state", "type") in TERMINAL_ISSUE_STATES:
            return skip("terminal_state")
        project = _dig(issue, "project", "name")
        if self.allowed_projects is not None and project not in self.allowed_projects:
            return skip("project_not_allowed")
        mention = _mention(body)
        issue_id = _issue_id(session)
        if issue_id is not None:
            blocked = await self._failure_backoff(delivery.org_id, issue_id, mention)
            if blocked is not None:
                return blocked
        queue = af_queue(delivery.org_id)
        if self.session_cap and await self._unfinished(queue) >= self.session_cap:
            return skip("session_hard_cap")
        prompt = _text(body.get("promptContext")) or _text(_dig(session, "comment", "body"))
        extra = _origin(delivery)
        if mention:
            extra["initiation"] = issue_failures.MENTION
        try:
            created = await self.dispatcher.create_session(
                NewSession(
                    queue=queue,
                    session_id=session["id"],
                    issue_id=issue_id,
                    issue_identifier=_text(issue.get("identifier")),
                    title=_text(issue.get("title")),
                    description=_text(issue.get("description")),
                    prompt=prompt,
                    work_type=work_type(prompt, _text(_dig(issue, "state", "name"))),
                    extra=extra,
                    org_id=delivery.org_id,
                    created_by=Who(delivery.provider, "webhook"),
                )
            )
        except Conflict:
            return skip("session_already_exists")
        return Outcome(PROCESSED, result={"action": "queued", "sessionId": created.id})

    async def _failure_backoff(self, org_id: str, issue_id: str, mention: bool) -> Outcome | None:
        """The skip of a session the issue's failure circuit breaker holds back, or None. A
        mention passes a backoff (the person asked for a retry) but not a hard stop."""
        store = self.dispatcher.store
        recent = await store.issue_sessions(org_id, issue_id, issue_failures.LOOK_BACK)
        found = issue_failures.check(recent, self.dispatcher.clock.now_ms())
        if found.allowed or (mention and found.reason == "backoff"):
            return None
        details: dict[str, Any] = {
            "failureCount": found.failures,
            "backoffRemainingS": found.remaining_s,
        }
        if found.last_error:
            details["lastError"] = found.last_error[:300]
        return Outcome(SKIPPED, f"session_failure_{found.reason}", details)

    async def _unfinished(self, queue: str) -> int:
        return await self.dispatcher.store.count_unfinished(queue)

    async def _prompted(self, delivery: WebhookDelivery) -> Outcome:
        body = delivery.body
        session_id = body["agentSession"]["id"]
        session = await self.dispatcher.store.get_session(session_id)
        if session is None or session.org_id != delivery.org_id:
            return skip("session_not_found")
        activity = body.get("agentActivity") or {}
        if _dig(activity, "signal") == "stop":
            return await self._stop(delivery, session_id)
        text = _text(_dig(activity, "content", "body")) or _text(_dig(activity, "body"))
        if not text:
            return skip("empty_prompt")
        if not session.is_terminal:
            message_id = f"msg_{delivery.id}"
            inbox = await self.dispatcher.store.list_inbox(session_id)
            if all(m.id != message_id for m in inbox):
                await self.dispatcher.channel.send(
                    session_id, "directive", text, user_name="linear", message_id=message_id
                )
            return Outcome(PROCESSED, result={"action": "prompted", "sessionId": session_id})
        again = f"{session_id}.{delivery.id[-12:]}"
        try:
            await self.dispatcher.create_session(
                NewSession(
                    queue=session.queue,
                    session_id=again,
                    issue_id=session.issue_id,
                    issue_identifier=session.issue_identifier,
                    title=session.title,
                    description=session.description,
                    prompt=text,
                    work_type=session.work_type,
                    priority=PROMPTED_PRIORITY,
                    project=session.project,
                    extra={**_origin(delivery), "previousSessionId": session_id},
                    org_id=session.org_id,
                    created_by=Who(delivery.provider, "webhook"),
                )
            )
        except Conflict:
            return skip("duplicate_prompt")
        return Outcome(PROCESSED, result={"action": "requeued", "sessionId": again})

    async def _updated(self, delivery: WebhookDelivery) -> Outcome:
        state = _dig(delivery.body, "agentSession", "status")
        if state not in ENDED_SESSION_STATES:
            return skip("no_change")
        return await self._stop(delivery, delivery.body["agentSession"]["id"])

    async def _stop(self, delivery: WebhookDelivery, session_id: str) -> Outcome:
        session = await self.dispatcher.store.get_session(session_id)
        if session is None or session.org_id != delivery.org_id:
            return skip("session_not_found")
        if session.is_terminal:
            return skip("already_ended")
        try:
            await self.dispatcher.channel.stop(
                session_id, "stopped from Linear", user_name="linear"
            )
        except Conflict:
            return skip("already_ended")
        return Outcome(PROCESSED, result={"action": "stopped", "sessionId": session_id})


def _mention(body: dict[str, Any]) -> bool:
    """Whether a person's comment mentioning the agent opened the session (else it was
    delegated to the agent, or opened by automation)."""
    return isinstance(body.get("comment"), dict) or isinstance(
        _dig(body, "agentSession", "comment"), dict
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _origin(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "source": f"{delivery.provider}-webhook",
        "webhookEventId": delivery.id,
        "correlationId": delivery.correlation_id,
    }
