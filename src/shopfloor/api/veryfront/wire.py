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
from shopfloor.store.run_records import RunEventRecord, WorkerSessionRecord

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
    run, session = state.run, state.session
    live = session.is_live
    return {
        "run_id": run.run_id,
        "conversation_id": run.conversation_id,
        "message_id": run.message_id,
        "project_id": run.project_id,
        "agent_id": run.agent_id,
        "implementation_kind": run.implementation_kind,
        "worker_key": run.worker_key,
        "status": run_status(session),
        "request_snapshot": run.request_snapshot,
        "latest_event_id": run.latest_event_id,
        "latest_external_event_sequence": run.latest_external_event_sequence,
        "lease_owner": session.worker_id if live else None,
        "lease_expires_at": iso(session.lease_expires_at) if live else None,
        "worker_session": worker_session_view(state.worker_session),
        "waiting_tool_call_id": None,
        "waiting_tool_name": None,
        "source_target_kind": "project",
        "source_target_environment_id": None,
        "source_target_branch_id": None,
        "source_target_release_version": None,
        "runtime_target_kind": None,
        "runtime_target_environment_id": None,
        "runtime_target_branch_id": None,
        "terminal_error_code": run.terminal_error_code,
        "terminal_error_message": run.terminal_error_message,
        "session_id": session.id,
        "created_at": iso(run.created_at),
        "updated_at": iso(max(run.updated_at, session.updated_at)),
    }


def event_view(ev: RunEventRecord) -> dict[str, Any]:
    return {"id": ev.event_id, "type": ev.type, "created_at": iso(ev.at), "event": ev.payload}
