"""Veryfront wire shapes of conversations, messages and input requests (snake_case, ISO
timestamps; nullable keys always present, as `veryfront/agent`'s schemas read them)."""

from __future__ import annotations

from typing import Any

from shopfloor.api.timefmt import iso
from shopfloor.store.run_records import ConversationRecord, InputRequestRecord, MessageRecord


def conversation_view(c: ConversationRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "project_id": c.project_id,
        "title": c.title,
        "type": c.type,
        "status": "active",
        "metadata": c.metadata,
        "message_count": c.message_count,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    }


def message_view(m: MessageRecord) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "role": m.role,
        "status": m.status,
        "parts": m.parts,
        "parent_id": m.parent_id,
        "idempotency_key": m.idempotency_key,
        "metadata": m.metadata,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    }


def input_request_view(r: InputRequestRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "conversation_id": r.conversation_id,
        "run_id": r.run_id,
        "tool_call_id": r.tool_call_id,
        "kind": r.kind,
        "status": r.status,
        "requested_responder_type": r.requested_responder_type,
        "title": r.title,
        "description": r.description,
        "fields": r.fields,
        "metadata": r.metadata,
        "recommendations": None,
        "created_at": iso(r.created_at),
        "expires_at": iso(r.expires_at),
        "submitted_at": iso(r.submitted_at),
        "cancelled_at": iso(r.cancelled_at),
        "expired_at": iso(r.expired_at),
        "latest_response": _response_view(r.response),
    }


def _response_view(response: dict[str, Any] | None) -> dict[str, Any] | None:
    if response is None:
        return None
    return {**response, "created_at": iso(response["created_at"])}
