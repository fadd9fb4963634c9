"""Reading a `POST /runs` body into a NewRun: the documented agent admission
(`config.agent_admission`) or the canonical form (`kind`, `owner`, `public_id`,
`parent_run_id`, `request`) that `veryfront/runs` and `createConversationAgentRun` send."""

from __future__ import annotations

from typing import Any

from shopfloor.api.envelope import ApiError
from shopfloor.api.veryfront import parse
from shopfloor.service.runs import RUN_KINDS, NewRun

RUNTIME_TARGET_KINDS = ("main_branch", "environment", "preview_branch")
SOURCE_TARGET_KINDS = ("project", "environment", "preview_branch", "release")
TRIGGER_KINDS = ("manual", "schedule", "webhook", "api")
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_BACKOFF_LIMIT = 100
_TARGET_IDS = (
    "runtime_target_environment_id",
    "runtime_target_branch_id",
    "source_target_environment_id",
    "source_target_branch_id",
)
_TEXTS = (("name", 500), ("target", 500), ("workflow_id", 200), ("batch_id", 200))


def admission(body: dict[str, Any], idempotency_key: str | None) -> NewRun:
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise ApiError(400, "Idempotency-Key must be 1-255 characters")
    config = parse.opt_object(body, "config")
    if config is not None and "agent_admission" in config:
        return _agent_admission(body, config, idempotency_key)
    if any(name in body for name in ("kind", "owner", "request", "public_id")):
        return _canonical(body, idempotency_key)
    raise ApiError(400, "config.agent_admission is required")


def _agent_admission(
    body: dict[str, Any], config: dict[str, Any], idempotency_key: str | None
) -> NewRun:
    admission = parse.opt_object(config, "agent_admission", label="config.agent_admission")
    if admission is None:
        raise ApiError(400, "config.agent_admission must be an object")
    if admission.get("mode") != "worker":
        raise ApiError(400, 'config.agent_admission.mode must be "worker"')
    prefix = "config.agent_admission."
    kind = parse.pattern_field(admission, "implementation_kind", prefix)
    key = parse.pattern_field(admission, "worker_key", prefix)
    target = parse.opt_object(body, "target") or {}
    if target.get("type", "agent") != "agent":
        raise ApiError(400, 'target.type must be "agent"')
    conversation_id = parse.opt_uuid(body, "conversation_id")
    field = "request_snapshot" if "request_snapshot" in body else "input"
    snapshot = body.get("request_snapshot", body.get("input"))
    return NewRun(
        project_reference=_project(body.get("project_id"), "project_id"),
        implementation_kind=kind,
        worker_key=key,
        agent_id=parse.opt_text(target, "id", 200, label="target.id"),
        run_id=_run_id(body.get("run_id", body.get("public_id"))),
        conversation_id=conversation_id,
        message_id=parse.opt_uuid(body, "message_id"),
        request_snapshot=None if snapshot is None else parse.request_snapshot(snapshot, field),
        idempotency_key=idempotency_key,
        priority=_priority(body),
        title=parse.opt_text(body, "title", 500),
        owner_kind="project" if conversation_id is None else "conversation",
        spec=_drop_none({"input": body.get("input"), "config": config}),
    )


def _canonical(body: dict[str, Any], idempotency_key: str | None) -> NewRun:
    kind = body.get("kind", "agent")
    if kind not in RUN_KINDS:
        raise ApiError(400, "kind must be one of: " + ", ".join(RUN_KINDS))
    request = parse.opt_object(body, "request") or {}
    owner_kind, owner_id = _owner(body)
    project = _project(body.get("project_id", request.get("project_id")), "project_id")
    if owner_kind == "project" and owner_id is not None:
        if project is not None and project != owner_id:
            raise ApiError(400, "owner.id and project_id name different projects")
        project = _project(owner_id, "owner.id")
    conversation_id = owner_id if owner_kind == "conversation" else None
    implementation_kind = key = None
    if request.get("implementation_kind") is not None:
        implementation_kind = parse.pattern_field(request, "implementation_kind", "request.")
    if request.get("worker_key") is not None:
        key = parse.pattern_field(request, "worker_key", "request.")
    spec = _spec(kind, body, request)
    return NewRun(
        project_reference=project,
        implementation_kind=implementation_kind,
        worker_key=key,
        agent_id=parse.opt_text(request, "agent_id", 200, label="request.agent_id"),
        run_id=_run_id(body.get("public_id", body.get("run_id"))),
        conversation_id=conversation_id,
        message_id=parse.opt_uuid(request, "message_id", label="request.message_id"),
        request_snapshot=_snapshot(request, body) if kind == "agent" else None,
        idempotency_key=idempotency_key,
        priority=_priority(body),
        title=parse.opt_text(body, "title", 500) or spec.get("name"),
        kind=kind,
        owner_kind=owner_kind,
        parent_run_id=_run_id(body.get("parent_run_id"), "parent_run_id"),
        spec=spec,
    )


def _owner(body: dict[str, Any]) -> tuple[str, str | None]:
    """(kind, id); without an owner, the run belongs to its project."""
    owner = parse.opt_object(body, "owner")
    if owner is None:
        conversation_id = parse.opt_uuid(body, "conversation_id")
        return ("project", None) if conversation_id is None else ("conversation", conversation_id)
    kind = owner.get("kind")
    if kind not in ("conversation", "project"):
        raise ApiError(400, 'owner.kind must be "conversation" or "project"')
    owner_id = owner.get("id")
    if not isinstance(owner_id, str):
        raise ApiError(400, "owner.id is required")
    if kind == "conversation":
        return kind, parse.uuid_param(owner_id, "owner.id")
    return kind, owner_id


def _spec(kind: str, body: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The canonical request's other fields, checked, as the run keeps and shows them."""
    spec: dict[str, Any] = {}
    for name, limit in _TEXTS:
        spec[name] = parse.opt_text(request, name, limit, label=f"request.{name}")
    if kind != "agent" and spec["target"] is None:
        raise ApiError(400, "request.target is required")
    if kind == "workflow" and spec["workflow_id"] is None:
        raise ApiError(400, "request.workflow_id is required")
    spec["runtime_target_kind"] = parse.opt_choice(
        request, "runtime_target_kind", RUNTIME_TARGET_KINDS, label="request.runtime_target_kind"
    )
    spec["source_target_kind"] = parse.opt_choice(
        request, "source_target_kind", SOURCE_TARGET_KINDS, label="request.source_target_kind"
    )
    for name in _TARGET_IDS:
        spec[name] = parse.opt_uuid(request, name, label=f"request.{name}")
    spec["timeout_seconds"] = parse.opt_int(
        request, "timeout_seconds", 1, MAX_TIMEOUT_SECONDS, label="request.timeout_seconds"
    )
    spec["backoff_limit"] = parse.opt_int(
        request, "backoff_limit", 0, MAX_BACKOFF_LIMIT, label="request.backoff_limit"
    )
    spec["start_mode"] = parse.opt_text(request, "start_mode", 64, label="request.start_mode")
    spec["input"] = request.get("input", body.get("input"))
    spec["config"] = request.get("config")
    trigger = parse.opt_object(body, "trigger") or {}
    spec["trigger_kind"] = (
        parse.opt_choice(trigger, "kind", TRIGGER_KINDS, label="trigger.kind") or "api"
    )
    spec["trigger_id"] = parse.opt_text(trigger, "id", 200, label="trigger.id")
    return _drop_none(spec)


def _snapshot(request: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
    """An agent run's request snapshot: given as such, or made from an input that is a
    string (one user message) or has messages. None: a conversation's run then gets one
    built from the conversation's messages when it is claimed."""
    if request.get("request_snapshot") is not None:
        return parse.request_snapshot(request["request_snapshot"], "request.request_snapshot")
    value = request.get("input", body.get("input"))
    field = "request.input" if "input" in request else "input"
    if isinstance(value, str) or (isinstance(value, dict) and "messages" in value):
        return parse.request_snapshot(value, field)
    return None


def _project(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a project UUID or slug")
    if not parse.PROJECT_REFERENCE.match(value):
        raise ApiError(400, f"{name} must be a project UUID or slug (1-200 of A-Z a-z 0-9 _ . : -)")
    return value


def _run_id(value: Any, name: str = "run_id") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be 1-128 characters of A-Z a-z 0-9 _ . : -")
    return parse.run_id_param(value, name)


def _priority(body: dict[str, Any]) -> int | None:
    return parse.opt_int(body, "priority", 1, 9)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
