"""AgentFactory wire shapes: QueuedWork and AgentSessionState, camelCase, times in epoch ms."""

from __future__ import annotations

from typing import Any

from shopfloor.store.records import FileLock, InboxMessage, RecoveryPacket, SessionRecord


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def queued_work(s: SessionRecord) -> dict[str, Any]:
    """A poll work item. `providerSessionId` appears only when the worker should resume."""
    work = {
        **s.extra,
        "sessionId": s.id,
        "issueId": s.issue_id or "",
        "issueIdentifier": s.issue_identifier or "",
        "priority": s.priority,
        "queuedAt": s.queued_at,
    }
    work.update(
        _compact(
            {
                "prompt": s.prompt,
                "providerSessionId": s.provider_session_id,
                "workType": s.work_type,
                "projectName": s.project,
                "repository": s.repository,
                "agentId": s.agent_id,
                "title": s.title,
                "body": s.description,
            }
        )
    )
    return work


def session_state(s: SessionRecord) -> dict[str, Any]:
    """The raw AgentSessionState a worker reads from GET /api/sessions/{id}/status."""
    state: dict[str, Any] = {
        "linearSessionId": s.id,
        "sessionId": s.id,
        "issueId": s.issue_id or "",
        "providerSessionId": s.provider_session_id,
        "worktreePath": s.worktree_path or "",
        "status": s.status,
        "createdAt": s.created_at,
        "updatedAt": s.updated_at,
        "queuedAt": s.queued_at,
        "priority": s.priority,
    }
    state.update(
        _compact(
            {
                "issueIdentifier": s.issue_identifier,
                "workerId": s.worker_id,
                "claimedAt": s.claimed_at,
                "promptContext": s.prompt,
                "workType": s.work_type,
                "agentId": s.agent_id,
                "projectName": s.project,
                "totalCostUsd": s.total_cost_usd,
                "inputTokens": s.input_tokens,
                "outputTokens": s.output_tokens,
            }
        )
    )
    return state


def inbox_message(m: InboxMessage) -> dict[str, Any]:
    """An InboxMessage as the TS worker reads it from poll's `inboxMessages`."""
    return {
        "id": m.id,
        "type": m.type,
        "sessionId": m.session_id,
        "payload": m.payload,
        **_compact({"userId": m.user_id, "userName": m.user_name}),
        "createdAt": m.created_at,
        "lane": m.lane,
    }


def file_conflict(c: FileLock) -> dict[str, Any]:
    return {
        "filePath": c.path,
        "heldBy": {
            "sessionId": c.session_id,
            "repoId": c.repo_id,
            "filePath": c.path,
            "reservedAt": c.reserved_at,
            **_compact({"reason": c.reason}),
        },
    }


def recovery_packet(p: RecoveryPacket) -> dict[str, Any]:
    return {**p.data, "packetId": p.id, "attempt": p.attempt, "createdAt": p.created_at}
