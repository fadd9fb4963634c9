"""Veryfront wire shapes (snake_case, ISO timestamps, UUID ids) of workers, runs and worker
sessions, as `veryfront/agent`'s zod schemas read them: nullable fields are always present."""

from __future__ import annotations

from typing import Any

from shopfloor.api.timefmt import iso
from shopfloor.service.runs import AgentWorker, RunState
from shopfloor.store.records import (
    CLAIMED,
    COMPLETED,
    FAILED,
    FINALIZING,
    PENDING,
    RUNNING,
    STOPPED,
    WORKER_ACTIVE,
    SessionRecord,
)
from shopfloor.store.run_records import RunEventRecord, RunRecord, WorkerSessionRecord

# Session status -> run status (the enum getConversationRun accepts).
_RUN_STATUS = {
    PENDING: "pending",
    CLAIMED: "running",
    RUNNING: "running",
    FINALIZING: "running",
    COMPLETED: "completed",
    FAILED: "failed",
    STOPPED: "cancelled",
}
# Wire terminal status -> session status.
TERMINAL_FROM_WIRE = {"completed": COMPLETED, "failed": FAILED, "cancelled": STOPPED}


def run_status(session: SessionRecord) -> str:
    return _RUN_STATUS.get(session.status, "running")


def is_waiting(state: RunState) -> bool:
    return state.run.waiting_tool_call_id is not None and not state.session.is_terminal


def projection_status(state: RunState) -> str:
    """The conversation run projection's status: `waiting_for_tool` while an input request
    is open."""
    return "waiting_for_tool" if is_waiting(state) else run_status(state.session)


def canonical_status(state: RunState) -> str:
    """The canonical Run's status, which has `waiting` (with a waiting_reason) instead."""
    return "waiting" if is_waiting(state) else run_status(state.session)


def worker_view(agent: AgentWorker) -> dict[str, Any]:
    w, d = agent.worker, agent.details
    active = w.status == WORKER_ACTIVE
    return {
        "id": w.id,
        "project_id": d.project_id,
        "implementation_kind": d.implementation_kind,
        "implementation_display_name": d.implementation_display_name,
        "worker_key": d.worker_key,
        "display_name": d.display_name,
        "status": "active" if active else "disabled",
        "connection_status": "online" if active else "offline",
        "metadata": d.metadata,
        "last_heartbeat_at": iso(w.last_heartbeat_at),
        "created_at": iso(d.created_at),
        "updated_at": iso(max(d.updated_at, w.last_heartbeat_at)),
    }


def worker_session_view(ws: WorkerSessionRecord | None) -> dict[str, Any] | None:
    if ws is None:
        return None
    return {
        "id": ws.id,
        "run_id": ws.run_id,
        "implementation_kind": ws.implementation_kind,
        "worker_id": ws.worker_id,
        "session_key": ws.session_key,
        "status": ws.status,
        "metadata": ws.metadata,
        "created_at": iso(ws.created_at),
        "updated_at": iso(ws.updated_at),
        "ended_at": iso(ws.ended_at),
    }


def run_view(state: RunState) -> dict[str, Any]:
    """The run as the worker client and the conversation projection read it."""
    run, session = state.run, state.session
    live = session.is_live
    spec = run.spec or {}
    return {
        "run_id": run.run_id,
        "conversation_id": run.conversation_id,
        "message_id": run.message_id,
        "project_id": run.project_id,
        "agent_id": run.agent_id,
        "implementation_kind": run.implementation_kind,
        "worker_key": run.worker_key,
        "status": projection_status(state),
        "request_snapshot": run.request_snapshot,
        "latest_event_id": run.latest_event_id,
        "latest_external_event_sequence": run.latest_external_event_sequence,
        "lease_owner": session.worker_id if live else None,
        "lease_expires_at": iso(session.lease_expires_at) if live else None,
        "worker_session": worker_session_view(state.worker_session),
        "waiting_tool_call_id": run.waiting_tool_call_id if is_waiting(state) else None,
        "waiting_tool_name": run.waiting_tool_name if is_waiting(state) else None,
        "source_target_kind": spec.get("source_target_kind", "project"),
        "source_target_environment_id": spec.get("source_target_environment_id"),
        "source_target_branch_id": spec.get("source_target_branch_id"),
        "source_target_release_version": spec.get("source_target_release_version"),
        "runtime_target_kind": spec.get("runtime_target_kind"),
        "runtime_target_environment_id": spec.get("runtime_target_environment_id"),
        "runtime_target_branch_id": spec.get("runtime_target_branch_id"),
        "terminal_error_code": run.terminal_error_code,
        "terminal_error_message": run.terminal_error_message,
        "session_id": session.id,
        "created_at": iso(run.created_at),
        "updated_at": iso(max(run.updated_at, session.updated_at)),
    }


def canonical_run_view(state: RunState, *, worker_session: bool = True) -> dict[str, Any]:
    """The canonical Run (`veryfront/runs` RunSchema: every key present), with the projection's
    keys too (the client drops what its schema does not name)."""
    run = state.run
    spec = run.spec or {}
    view = run_view(state)
    if not worker_session:
        del view["worker_session"]
    view.update(
        {
            "kind": run.kind,
            "status": canonical_status(state),
            "owner": {
                "kind": run.owner_kind,
                "id": run.conversation_id if run.owner_kind == "conversation" else run.project_id,
            },
            "parent_run_id": run.parent_run_id,
            "root_run_id": run.root_run_id or run.run_id,
            "waiting_reason": "tool" if is_waiting(state) else None,
            "metadata": run.completion_metadata,
            "input": spec.get("input"),
            "config": spec.get("config"),
            "output": run.output,
            "error": _error(run),
            "logs": None,
            "artifacts": [],
            "duration_ms": _duration(state),
            "exit_code": None,
            "trigger_kind": spec.get("trigger_kind", "api"),
            "trigger_id": spec.get("trigger_id"),
            "created_by": spec.get("created_by"),
            "started_at": iso(run.started_at),
            "completed_at": iso(_completed_at(state)),
        }
    )
    for key in _SPEC_TEXT:
        view[key] = spec.get(key)
    return view


# Canonical Run keys read from the admitted request as they are (strings or integers).
_SPEC_TEXT = (
    "target",
    "workflow_id",
    "schedule_id",
    "batch_id",
    "start_mode",
    "timeout_seconds",
    "backoff_limit",
)


def _error(run: RunRecord) -> dict[str, Any] | None:
    if run.terminal_error_message is None and run.terminal_error_code is None:
        return None
    error: dict[str, Any] = {"message": run.terminal_error_message or run.terminal_error_code}
    if run.terminal_error_code is not None:
        error["code"] = run.terminal_error_code
    return error


def _completed_at(state: RunState) -> int | None:
    """When the run ended: as the run routes recorded it, else (an operator stopped its
    session) when its session last changed."""
    if state.run.completed_at is not None or not state.session.is_terminal:
        return state.run.completed_at
    return state.session.updated_at


def _duration(state: RunState) -> int | None:
    completed_at = _completed_at(state)
    if state.run.started_at is None or completed_at is None:
        return None
    return max(0, completed_at - state.run.started_at)


def event_view(ev: RunEventRecord) -> dict[str, Any]:
    """A RunEvent of `veryfront/runs`."""
    return {
        "event_id": ev.event_id,
        "event_type": ev.type,
        "payload": ev.payload,
        "created_at": iso(ev.at),
    }


def page_info(self: str | None, next: str | None, prev: str | None) -> dict[str, Any]:
    """`first` is always the JSON null (the client's schema is a literal null)."""
    return {"self": self, "first": None, "next": next, "prev": prev}
