"""The fleet operations' replies (rensei-platform.md §7.3), shared by the REST routes under
/api/mcp and the MCP tools of the same names."""

from __future__ import annotations

from typing import Any

from shopfloor.api.timefmt import iso
from shopfloor.service.fleet_ops import CostReport
from shopfloor.store.records import InboxMessage, SessionRecord


def task_view(s: SessionRecord) -> dict[str, Any]:
    return {
        "taskId": s.id,
        "issueId": s.issue_id or s.issue_identifier,
        "status": s.status,
        "workType": s.work_type,
        "priority": s.priority,
        "projectName": s.project,
        "workerId": s.worker_id,
        "createdAt": iso(s.created_at),
        "updatedAt": iso(s.updated_at),
        "totalCostUsd": s.total_cost_usd,
        "inputTokens": s.input_tokens,
        "outputTokens": s.output_tokens,
        "errorMessage": s.error_message,
    }


def submitted(s: SessionRecord) -> dict[str, Any]:
    return {
        "submitted": True,
        "taskId": s.id,
        "issueId": s.issue_id,
        "status": s.status,
        "priority": s.priority,
        "workType": s.work_type,
    }


def fleet(sessions: list[SessionRecord]) -> dict[str, Any]:
    return {
        "total": len(sessions),
        "returned": len(sessions),
        "sessions": [task_view(s) for s in sessions],
    }


def cost(report: CostReport) -> dict[str, Any]:
    return {
        "totalSessions": report.total_sessions,
        "sessionsWithCostData": report.with_cost,
        "totalCostUsd": report.total_cost_usd,
        "totalInputTokens": report.input_tokens,
        "totalOutputTokens": report.output_tokens,
    }


def forwarded(s: SessionRecord, prompt: InboxMessage) -> dict[str, Any]:
    return {
        "forwarded": True,
        "promptId": prompt.id,
        "taskId": s.id,
        "issueId": s.issue_id,
        "sessionStatus": s.status,
    }


def stopped(before: SessionRecord, after: SessionRecord) -> dict[str, Any]:
    return {
        "stopped": True,
        "taskId": after.id,
        "issueId": after.issue_id,
        "previousStatus": before.status,
        "newStatus": after.status,
    }
