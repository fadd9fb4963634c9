"""Veryfront conversations, messages and input requests (`veryfront/agent`'s conversation and
human-input helpers). A conversation belongs to a project once linked; until then only a
caller for every project may touch it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from shopfloor.api.envelope import INT64_MAX, ApiError
from shopfloor.api.openapi import json_body
from shopfloor.api.veryfront import content, parse
from shopfloor.api.veryfront.auth import (
    WRONG_PROJECT,
    VfCaller,
    named_project,
    require_project,
    run_service,
    vf_caller,
)
from shopfloor.api.veryfront.conversation_wire import (
    conversation_view,
    input_request_view,
    message_view,
)
from shopfloor.api.veryfront.run_routes import user_only
from shopfloor.api.veryfront.user_schemas import (
    USER_ERRORS,
    VERYFRONT_USER,
    Conversation,
    ConversationCreate,
    ConversationPatch,
    DeletedConversation,
    InputRequest,
    InputRequestCreate,
    InputRequestList,
    InputResponseCreate,
    Message,
    MessageCreate,
    MessageList,
    reply,
)
from shopfloor.api.veryfront.wire import page_info
from shopfloor.service.conversations import (
    ConversationService,
    NewConversation,
    NewInputRequest,
    NewMessage,
)
from shopfloor.service.runs import ProjectRef, project_ref
from shopfloor.store.run_records import ConversationRecord

router = APIRouter(tags=[VERYFRONT_USER], responses=USER_ERRORS)
Caller = Annotated[VfCaller, Depends(vf_caller)]

CONVERSATION_TYPES = ("chat", "agent_task", "support", "channel", "project_agent")
RESPONDER_TYPES = ("human", "agent", "system")
REQUEST_STATUSES = ("open", "submitted", "cancelled", "expired")
MESSAGES_DEFAULT, MESSAGES_MAX = 50, 100
REQUESTS_MAX = 100


def _service(request: Request) -> ConversationService:
    return ConversationService(run_service(request))


async def _conversation(
    request: Request, conversation_id: str, caller: VfCaller
) -> ConversationRecord:
    conversation = await _service(request).get(parse.uuid_param(conversation_id, "conversation_id"))
    caller.require_conversation(conversation)
    return conversation


async def _project(
    request: Request, body: dict[str, Any], caller: VfCaller, slug_org: str | None = None
) -> tuple[ProjectRef, str] | None:
    """The project the body names (a slug: of `slug_org`, else of the caller's
    organisation), and its organisation, if the caller may use it."""
    value = body.get("project_id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "project_id must be a project UUID or slug")
    project = project_ref(parse.project_reference(value), slug_org or caller.slug_org)
    return project, await require_project(request, caller, project, slug_org)


# -- conversations --


@router.post(
    "/conversations",
    status_code=201,
    response_model=None,
    responses=reply(Conversation, 201, 409),
    openapi_extra=json_body(ConversationCreate),
)
async def create_conversation(request: Request, caller: Caller) -> JSONResponse:
    """Start a conversation, in the named project or the token's own."""
    user_only(caller, "Create conversations")
    body = parse.parse_json(await request.body(), empty_ok=True)
    named = await _project(request, body, caller)
    if named is None and caller.project is not None:
        own = named_project(caller, caller.project)
        named = own, await require_project(request, caller, own)
    project, org = named if named is not None else (None, caller.slug_org)
    new = NewConversation(
        project=project,
        title=parse.opt_text(body, "title", 500),
        type=parse.opt_choice(body, "type", CONVERSATION_TYPES) or "chat",
        metadata=parse.opt_object(body, "metadata"),
    )
    conversation = await _service(request).create(new, org)
    return JSONResponse(conversation_view(conversation), status_code=201)


@router.get("/conversations/{conversation_id}", response_model=None, responses=reply(Conversation))
async def read_conversation(
    conversation_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    return conversation_view(await _conversation(request, conversation_id, caller))


@router.patch(
    "/conversations/{conversation_id}",
    response_model=None,
    responses=reply(Conversation, 200, 409),
    openapi_extra=json_body(ConversationPatch),
)
async def update_conversation(
    conversation_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    """Link an unlinked conversation to a project; change its title or metadata."""
    user_only(caller, "Change conversations")
    conversation = await _conversation(request, conversation_id, caller)
    body = parse.parse_json(await request.body())
    named = await _project(request, body, caller, conversation.org_id)
    if named is not None and named[1] != conversation.org_id:
        raise ApiError(403, WRONG_PROJECT)  # (the admin key: one organisation's each)
    updated = await _service(request).update(
        conversation.id,
        project=None if named is None else named[0],
        title=parse.opt_text(body, "title", 500),
        metadata=parse.opt_object(body, "metadata"),
    )
    return conversation_view(updated)


@router.delete(
    "/conversations/{conversation_id}",
    response_model=None,
    responses=reply(DeletedConversation, 200, 409),
)
async def delete_conversation(
    conversation_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    """Delete a conversation; its runs that have not ended are cancelled."""
    user_only(caller, "Delete conversations")
    conversation = await _conversation(request, conversation_id, caller)
    deleted, cancelled = await _service(request).delete(conversation.id)
    return {
        "id": deleted.id,
        "deleted": True,
        "cancelled_run_ids": [state.run.run_id for state in cancelled],
    }


# -- messages --


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=201,
    response_model=None,
    responses=reply(Message, 201, 409),
    openapi_extra=json_body(MessageCreate),
)
async def post_message(conversation_id: str, request: Request, caller: Caller) -> JSONResponse:
    """Add a message; the same idempotency_key again returns the first one (200)."""
    conversation = await _conversation(request, conversation_id, caller)
    body = parse.parse_json(await request.body())
    role = body.get("role")
    if role not in content.MESSAGE_ROLES:
        raise ApiError(400, "role must be one of: " + ", ".join(content.MESSAGE_ROLES))
    if "parts" not in body:
        raise ApiError(400, "parts is required")
    new = NewMessage(
        role=role,
        parts=content.message_parts(body["parts"]),
        idempotency_key=parse.opt_text(body, "idempotency_key", 255),
        parent_id=parse.opt_uuid(body, "parent_id"),
        metadata=parse.opt_object(body, "metadata"),
        status=parse.opt_choice(body, "status", content.MESSAGE_STATUSES) or "completed",
    )
    message, created = await _service(request).post_message(conversation.id, new)
    return JSONResponse(message_view(message), status_code=201 if created else 200)


@router.get(
    "/conversations/{conversation_id}/messages", response_model=None, responses=reply(MessageList)
)
async def list_messages(
    conversation_id: str,
    request: Request,
    caller: Caller,
    limit: Annotated[str | None, Query(description="1-100, default 50")] = None,
    after: Annotated[str | None, Query(description="Messages after this seq, oldest first")] = None,
    before: Annotated[str | None, Query(description="Messages before this seq")] = None,
) -> dict[str, Any]:
    """Oldest first: the newest `limit` messages (before `before`), or the first `limit`
    after `after`. page_info.prev is the `before` of older ones, next the `after` of newer."""
    conversation = await _conversation(request, conversation_id, caller)
    size = parse.query_int(limit, "limit", 1, MESSAGES_MAX, MESSAGES_DEFAULT)
    after_seq = None if after is None else parse.query_int(after, "after", 0, INT64_MAX, 0)
    before_seq = None if before is None else parse.query_int(before, "before", 1, INT64_MAX, 1)
    found = await _service(request).messages(
        conversation.id, after_seq=after_seq, before_seq=before_seq, limit=size
    )
    last_seq = conversation.message_count
    first = found[0].seq if found else None
    newest = found[-1].seq if found else None
    return {
        "data": [message_view(m) for m in found],
        "page_info": page_info(
            None,
            str(newest) if newest is not None and newest < last_seq else None,
            str(first) if first is not None and first > 1 else None,
        ),
    }


# -- input requests --


@router.post(
    "/conversations/{conversation_id}/input-requests",
    status_code=201,
    response_model=None,
    responses=reply(InputRequest, 201, 409),
    openapi_extra=json_body(InputRequestCreate),
)
async def create_input_request(
    conversation_id: str, request: Request, caller: Caller
) -> JSONResponse:
    """Ask a person for values on behalf of a run's tool call: the run waits
    (`waiting_for_tool`) until the request is answered, cancelled or expires. The same run
    and tool call again returns the first request (200)."""
    conversation = await _conversation(request, conversation_id, caller)
    body = parse.parse_json(await request.body())
    if body.get("kind") != "form":
        raise ApiError(400, 'kind must be "form"')
    tool_call_id = body.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not 1 <= len(tool_call_id) <= 128:
        raise ApiError(400, "tool_call_id must be a string of 1-128 characters")
    run_id = body.get("run_id")
    if not isinstance(run_id, str):
        raise ApiError(400, "run_id is required")
    title = body.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= 256:
        raise ApiError(400, "title must be a string of 1-256 characters")
    expires = body.get("expires_at")
    new = NewInputRequest(
        run_id=parse.run_id_param(run_id),
        tool_call_id=tool_call_id,
        title=title,
        fields=content.form_fields(body.get("fields")),
        expires_at=None if expires is None else parse.iso_time(expires, "expires_at"),
        description=parse.opt_text(body, "description", 2048),
        metadata=parse.opt_object(body, "metadata"),
        requested_responder_type=parse.opt_choice(body, "requested_responder_type", RESPONDER_TYPES)
        or "human",
    )
    opened, created = await _service(request).open_request(conversation.id, new, caller.worker_id)
    return JSONResponse(input_request_view(opened), status_code=201 if created else 200)


@router.get(
    "/conversations/{conversation_id}/input-requests",
    response_model=None,
    responses=reply(InputRequestList),
)
async def list_input_requests(
    conversation_id: str,
    request: Request,
    caller: Caller,
    status: Annotated[str | None, Query(description="open, submitted, cancelled or expired")] = (
        None
    ),
) -> dict[str, Any]:
    conversation = await _conversation(request, conversation_id, caller)
    if status is not None and status not in REQUEST_STATUSES:
        raise ApiError(400, "status must be one of: " + ", ".join(REQUEST_STATUSES))
    found = await _service(request).requests(conversation.id, status, REQUESTS_MAX)
    return {"data": [input_request_view(r) for r in found]}


@router.get(
    "/conversations/{conversation_id}/input-requests/{request_id}",
    response_model=None,
    responses=reply(InputRequest),
)
async def read_input_request(
    conversation_id: str, request_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    conversation = await _conversation(request, conversation_id, caller)
    found = await _service(request).request(
        conversation.id, parse.uuid_param(request_id, "input_request_id")
    )
    return input_request_view(found)


@router.post(
    "/conversations/{conversation_id}/input-requests/{request_id}/responses",
    response_model=None,
    responses=reply(InputRequest),
    openapi_extra=json_body(InputResponseCreate),
)
async def respond_to_input_request(
    conversation_id: str, request_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    """Answer an open request; the run's tool call gets the values and the run goes on."""
    user_only(caller, "Answer input requests")
    conversation = await _conversation(request, conversation_id, caller)
    body = parse.parse_json(await request.body())
    values = content.form_values(body.get("values"))
    answered = await _service(request).respond(
        conversation.id,
        parse.uuid_param(request_id, "input_request_id"),
        values,
        actor_id=caller.project or "operator",
    )
    return input_request_view(answered)


@router.post(
    "/conversations/{conversation_id}/input-requests/{request_id}/cancel",
    response_model=None,
    responses=reply(InputRequest),
)
async def cancel_input_request(
    conversation_id: str, request_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    """Cancel an open request (the tool call gets `submitted: false`)."""
    user_only(caller, "Cancel input requests")
    conversation = await _conversation(request, conversation_id, caller)
    cancelled = await _service(request).cancel_request(
        conversation.id, parse.uuid_param(request_id, "input_request_id")
    )
    return input_request_view(cancelled)
