"""What the AgentFactory worker protocol hands a worker, as typed values: the registration
reply, a poll's work items and inbox messages, a session's state. Each keeps the raw JSON
too (`raw`), since servers add fields a worker may pass on (a nack sends its item back)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _epoch_ms(value: Any) -> int | None:
    """An ISO 8601 time or epoch milliseconds, as epoch milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value:
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Registration:
    worker_id: str
    heartbeat_interval_ms: int
    poll_interval_ms: int
    runtime_token: str | None = None
    runtime_token_expires_at: int | None = None  # epoch ms

    @classmethod
    def of(cls, body: dict[str, Any]) -> Registration:
        worker_id = body.get("workerId")
        if not isinstance(worker_id, str) or not worker_id:
            raise ValueError("registration reply has no workerId")
        return cls(
            worker_id=worker_id,
            heartbeat_interval_ms=_positive(body.get("heartbeatInterval"), 30_000),
            poll_interval_ms=_positive(body.get("pollInterval"), 5_000),
            runtime_token=_str(body.get("runtimeToken")),
            runtime_token_expires_at=_epoch_ms(body.get("runtimeTokenExpiresAt")),
        )


def _positive(value: Any, default: int) -> int:
    """An interval from the server; a missing or non-positive one would make a hot loop."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value)
    return default


@dataclass(frozen=True)
class InboxMessage:
    id: str
    type: str  # stop | directive | nudge | hook-result
    session_id: str
    payload: str
    lane: str  # urgent | normal
    created_at: int | None = None
    user_name: str | None = None

    @classmethod
    def of(cls, session_id: str, body: dict[str, Any]) -> InboxMessage:
        payload = body.get("payload")
        return cls(
            id=str(body.get("id") or ""),
            type=str(body.get("type") or ""),
            session_id=str(body.get("sessionId") or session_id),
            payload=payload if isinstance(payload, str) else "",
            lane="urgent" if body.get("lane") == "urgent" else "normal",
            created_at=_epoch_ms(body.get("createdAt")),
            user_name=_str(body.get("userName")),
        )


@dataclass(frozen=True)
class WorkItem:
    """A QueuedWork item of a poll reply."""

    session_id: str
    issue_id: str | None
    issue_identifier: str | None
    priority: int
    prompt: str | None
    work_type: str | None
    project_name: str | None
    repository: str | None
    title: str | None
    body: str | None
    provider_session_id: str | None
    recovery_packet_id: str | None
    max_duration_seconds: float | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, body: dict[str, Any]) -> WorkItem:
        session_id = body.get("sessionId")
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("work item has no sessionId")
        priority = body.get("priority")
        limit = body.get("maxDurationSeconds")
        return cls(
            session_id=session_id,
            issue_id=_str(body.get("issueId")),
            issue_identifier=_str(body.get("issueIdentifier")),
            priority=priority if isinstance(priority, int) else 3,
            prompt=_str(body.get("prompt")),
            work_type=_str(body.get("workType")),
            project_name=_str(body.get("projectName")),
            repository=_str(body.get("repository")),
            title=_str(body.get("title")),
            body=_str(body.get("body")),
            provider_session_id=_str(body.get("providerSessionId")),
            recovery_packet_id=_str(body.get("recoveryPacketId")),
            max_duration_seconds=(
                float(limit)
                if isinstance(limit, int | float) and not isinstance(limit, bool) and limit > 0
                else None
            ),
            raw=body,
        )


@dataclass(frozen=True)
class PollReply:
    work: list[WorkItem]
    inbox: dict[str, list[InboxMessage]]
    pre_claimed: bool

    @classmethod
    def of(cls, body: dict[str, Any]) -> PollReply:
        raw_work = body.get("work")
        work = [WorkItem.of(w) for w in raw_work if isinstance(w, dict)] if raw_work else []
        inbox: dict[str, list[InboxMessage]] = {}
        raw_inbox = body.get("inboxMessages")
        if isinstance(raw_inbox, dict):
            for sid, messages in raw_inbox.items():
                if isinstance(messages, list):
                    inbox[sid] = [InboxMessage.of(sid, m) for m in messages if isinstance(m, dict)]
        return cls(work=work, inbox=inbox, pre_claimed=bool(body.get("preClaimed")))


@dataclass(frozen=True)
class SessionState:
    """GET /api/sessions/{id}/status: the raw AgentSessionState."""

    status: str
    worker_id: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, body: dict[str, Any]) -> SessionState:
        return cls(
            status=str(body.get("status") or ""),
            worker_id=_str(body.get("workerId")),
            raw=body,
        )


@dataclass(frozen=True)
class Transfer:
    transferred: bool
    reason: str | None = None
