"""Veryfront conversations: the message threads that own agent runs, their messages, and the
input requests with which a run's tool call asks a person for values.

An open input request puts its run into waiting for that tool call (`waiting_for_tool`):
the run takes no appended events until the request is answered, cancelled or expires, which
ends the wait and appends the tool's result to the run's events. No HTTP and no SQL here."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from shopfloor.service.errors import (
    Conflict,
    ConversationNotFound,
    InputRequestNotFound,
    InvalidInput,
    LeaseNotHeld,
)
from shopfloor.service.runs import ProjectRef, RunService, RunState
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.records import LIVE_STATUSES, Expect
from shopfloor.store.run_records import ConversationRecord, InputRequestRecord, MessageRecord
from shopfloor.store.tenancy_records import DEFAULT_ORG

# The tool a run waits on while an input request is open (the hosted `form_input` tool).
FORM_TOOL_NAME = "form_input"
LIFECYCLE_EVENT = "veryfront.input_request.lifecycle"
# Field types whose values are booleans and numbers; every other type takes a string.
_BOOLEAN_FIELDS = ("checkbox", "confirm")
_NUMBER_FIELDS = ("number",)


@dataclass(frozen=True)
class NewConversation:
    project: ProjectRef | None
    title: str | None = None
    type: str = "chat"
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class NewMessage:
    role: str
    parts: list[dict[str, Any]]
    idempotency_key: str | None = None
    parent_id: str | None = None
    metadata: dict[str, Any] | None = None
    status: str = "completed"


@dataclass(frozen=True)
class NewInputRequest:
    run_id: str
    tool_call_id: str
    title: str
    fields: list[dict[str, Any]]
    expires_at: int | None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    requested_responder_type: str = "human"


class ConversationService:
    def __init__(self, runs: RunService) -> None:
        self.runs = runs
        self.store = runs.store
        self.clock = runs.clock

    # -- conversations --

    async def create(self, new: NewConversation, org_id: str = DEFAULT_ORG) -> ConversationRecord:
        """A conversation of `org_id` (in `new.project`, a project of that organisation)."""
        if new.project is not None:
            await self.runs.record_project(new.project, org_id)
        now = self.clock.now_ms()
        conversation = ConversationRecord(
            id=str(uuid.uuid4()),
            created_at=now,
            updated_at=now,
            project_id=None if new.project is None else new.project.id,
            project_name=None if new.project is None else new.project.name,
            title=new.title,
            type=new.type,
            metadata=new.metadata,
            org_id=org_id,
        )
        if not await self.store.insert_conversation(conversation):
            raise Conflict("Conversation id collision; try again")
        return conversation

    async def get(self, conversation_id: str) -> ConversationRecord:
        conversation = await self.store.get_conversation(conversation_id)
        if conversation is None or conversation.deleted_at is not None:
            raise ConversationNotFound(conversation_id)
        return conversation

    async def update(
        self,
        conversation_id: str,
        *,
        project: ProjectRef | None,
        title: str | None,
        metadata: dict[str, Any] | None,
    ) -> ConversationRecord:
        """Link an unlinked conversation to a project (a linked one keeps its project: a
        different one is a conflict), and change its title or metadata."""
        conversation = await self.get(conversation_id)
        now = self.clock.now_ms()
        if project is not None and conversation.project_id != project.id:
            if conversation.project_id is not None:
                raise Conflict("Conversation is already linked to another project")
            await self.runs.record_project(project, conversation.org_id)
            linked = await self.store.update_conversation(
                conversation_id,
                {"project_id": project.id, "project_name": project.name, "updated_at": now},
                unlinked_only=True,
            )
            if linked is None:
                raise Conflict("Conversation is already linked to another project")
            conversation = linked
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = title
        if metadata is not None:
            changes["metadata"] = metadata
        if changes:
            changes["updated_at"] = now
            updated = await self.store.update_conversation(conversation_id, changes)
            if updated is None:
                raise ConversationNotFound(conversation_id)
            conversation = updated
        return conversation

    async def delete(self, conversation_id: str) -> tuple[ConversationRecord, list[RunState]]:
        """Delete a conversation; its runs that have not ended are cancelled."""
        conversation = await self.get(conversation_id)
        now = self.clock.now_ms()
        deleted = await self.store.update_conversation(
            conversation_id, {"deleted_at": now, "updated_at": now}
        )
        if deleted is None:
            raise ConversationNotFound(conversation_id)
        cancelled = []
        for run in await self.store.active_conversation_runs(conversation.id):
            done, state = await self.runs.cancel(run.run_id)
            if done:
                cancelled.append(state)
        return deleted, cancelled

    # -- messages --

    async def post_message(
        self, conversation_id: str, new: NewMessage
    ) -> tuple[MessageRecord, bool]:
        """Append a message; (existing, False) when its idempotency key was seen before."""
        await self.get(conversation_id)
        parent = new.parent_id
        if parent is not None and await self.store.get_message(conversation_id, parent) is None:
            raise InvalidInput("parent_id", "parent_id must name a message of this conversation")
        now = self.clock.now_ms()
        added = await self.store.add_message(
            MessageRecord(
                id=str(uuid.uuid4()),
                conversation_id=conversation_id,
                seq=0,
                role=new.role,
                parts=new.parts,
                created_at=now,
                updated_at=now,
                status=new.status,
                metadata=new.metadata,
                parent_id=new.parent_id,
                idempotency_key=new.idempotency_key,
            )
        )
        if added is None:
            raise ConversationNotFound(conversation_id)
        return added

    async def messages(
        self,
        conversation_id: str,
        *,
        after_seq: int | None,
        before_seq: int | None,
        limit: int,
    ) -> list[MessageRecord]:
        """Oldest first: after `after_seq` the first `limit`, else the newest `limit`."""
        await self.get(conversation_id)
        return await self.store.list_messages(
            conversation_id,
            after_seq=after_seq,
            before_seq=before_seq,
            limit=limit,
            newest=after_seq is None,
        )

    # -- input requests --

    async def open_request(
        self, conversation_id: str, new: NewInputRequest, worker_id: str | None
    ) -> tuple[InputRequestRecord, bool]:
        """Ask for input on behalf of a run's tool call; the run then waits for it. The same
        (run, tool call) again returns the request made first, with False. A worker's own
        token must hold the run's lease; any caller needs a run that is running."""
        await self.get(conversation_id)
        state = await self.runs.state(new.run_id, conversation_id)
        existing = await self.store.find_input_request(new.run_id, new.tool_call_id)
        if existing is not None:
            return existing, False
        now = self.clock.now_ms()
        if new.expires_at is not None and new.expires_at <= now:
            raise InvalidInput("expires_at", "expires_at must be in the future")
        session = state.session
        if session.is_terminal:
            raise Conflict("The run has already ended")
        if not self.runs.holds(session, worker_id, now):
            raise LeaseNotHeld(new.run_id)
        if state.run.waiting_tool_call_id not in (None, new.tool_call_id):
            raise Conflict(f"The run already waits for tool call {state.run.waiting_tool_call_id}")
        request = InputRequestRecord(
            id=str(uuid.uuid4()),
            conversation_id=conversation_id,
            run_id=new.run_id,
            tool_call_id=new.tool_call_id,
            title=new.title,
            fields=new.fields,
            created_at=now,
            updated_at=now,
            requested_responder_type=new.requested_responder_type,
            description=new.description,
            metadata=new.metadata,
            expires_at=new.expires_at,
        )
        expect = Expect(session.worker_id, session.lease_epoch, LIVE_STATUSES, lease_valid_at=now)
        lifecycle = {
            "type": "CUSTOM",
            "name": LIFECYCLE_EVENT,
            "value": {"action": "created", "inputRequestId": request.id, "title": new.title},
        }
        try:
            opened = await self.store.open_input_request(
                request, session.id, expect, FORM_TOOL_NAME, lifecycle
            )
        except DuplicateKey:
            found = await self.store.find_input_request(new.run_id, new.tool_call_id)
            if found is None:
                raise Conflict("The input request changed concurrently; try again") from None
            return found, False
        if opened is None:  # the lease or the waiting state moved since we read them
            raise Conflict("The run changed concurrently; try again")
        await self.runs.changed(new.run_id)
        return opened, True

    async def request(self, conversation_id: str, request_id: str) -> InputRequestRecord:
        """An input request, expired first if its time has passed."""
        await self.get(conversation_id)
        found = await self.store.get_input_request(request_id)
        if found is None or found.conversation_id != conversation_id:
            raise InputRequestNotFound(request_id)
        return await self._expire_if_due(found)

    async def requests(
        self, conversation_id: str, status: str | None, limit: int
    ) -> list[InputRequestRecord]:
        await self.get(conversation_id)
        found = await self.store.list_input_requests(conversation_id, None, limit)
        current = [await self._expire_if_due(r) for r in found]
        return [r for r in current if status is None or r.status == status]

    async def respond(
        self, conversation_id: str, request_id: str, values: dict[str, Any], actor_id: str
    ) -> InputRequestRecord:
        """Submit values; the run's tool call gets them as its result and the run goes on."""
        request = await self.request(conversation_id, request_id)
        if request.status != "open":
            raise Conflict(f"Input request is {request.status}")
        _check_values(request.fields, values)
        now = self.clock.now_ms()
        response = {
            "id": str(uuid.uuid4()),
            "input_request_id": request.id,
            "conversation_id": conversation_id,
            "run_id": request.run_id,
            "actor_type": "user",
            "actor_id": actor_id,
            "values": values,
            "created_at": now,
        }
        changes = {"status": "submitted", "submitted_at": now, "updated_at": now}
        return await self._settle(request, {**changes, "response": response}, True, values)

    async def cancel_request(self, conversation_id: str, request_id: str) -> InputRequestRecord:
        """Cancel an open request (the tool call gets `submitted: false`); a cancelled one
        stays as it is."""
        request = await self.request(conversation_id, request_id)
        if request.status == "cancelled":
            return request
        if request.status != "open":
            raise Conflict(f"Input request is {request.status}")
        now = self.clock.now_ms()
        changes = {"status": "cancelled", "cancelled_at": now, "updated_at": now}
        return await self._settle(request, changes, False, {})

    async def _expire_if_due(self, request: InputRequestRecord) -> InputRequestRecord:
        """An open request past its expiry is expired; one whose run has ended some other way
        than through the run routes (an operator's stop) is cancelled."""
        if request.status != "open":
            return request
        now = self.clock.now_ms()
        if request.expires_at is not None and request.expires_at <= now:
            changes = {"status": "expired", "expired_at": now, "updated_at": now}
            return await self._settle(request, changes, False, {})
        state = await self.runs.state(request.run_id)
        if state.session.is_terminal:
            changes = {"status": "cancelled", "cancelled_at": now, "updated_at": now}
            return await self._settle(request, changes, False, {})
        return request

    async def _settle(
        self,
        request: InputRequestRecord,
        changes: dict[str, Any],
        submitted: bool,
        values: dict[str, Any],
    ) -> InputRequestRecord:
        result = {"submitted": submitted, "values": values, "inputRequestId": request.id}
        event = {
            "type": "TOOL_CALL_RESULT",
            "messageId": str(uuid.uuid4()),
            "toolCallId": request.tool_call_id,
            "content": json.dumps(result, separators=(",", ":")),
            "role": "tool",
        }
        settled = await self.store.settle_input_request(request.id, changes, event)
        if settled is None:  # settled concurrently: show what it became
            current = await self.store.get_input_request(request.id)
            if current is None:
                raise InputRequestNotFound(request.id)
            if current.status != changes["status"]:
                raise Conflict(f"Input request is {current.status}")
            return current
        if settled[1] is not None:
            await self.runs.changed(request.run_id)
        return settled[0]


def _check_values(fields: list[dict[str, Any]], values: dict[str, Any]) -> None:
    """Every value names a field and has its field's type; every required field is given."""
    by_name = {str(f.get("name")): f for f in fields}
    for name, value in values.items():
        field = by_name.get(name)
        if field is None:
            raise InvalidInput("values", f"values.{name} is not a field of this input request")
        if value is None:
            continue
        kind = field.get("type")
        if kind in _BOOLEAN_FIELDS:
            ok = isinstance(value, bool)
        elif kind in _NUMBER_FIELDS:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            expected = (
                "a boolean"
                if kind in _BOOLEAN_FIELDS
                else "a number"
                if kind in _NUMBER_FIELDS
                else "a string"
            )
            raise InvalidInput("values", f"values.{name} must be {expected}")
    for name, field in by_name.items():
        if field.get("required") and values.get(name) in (None, ""):
            raise InvalidInput("values", f"values.{name} is required")
