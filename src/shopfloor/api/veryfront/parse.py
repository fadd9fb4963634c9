"""Reading and checking Veryfront request bodies. Every rejection is a 400 naming the field."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

from shopfloor.api.envelope import ApiError, is_number, parse_json_object

IMPLEMENTATION_KIND = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
WORKER_KEY = re.compile(r"^[a-zA-Z0-9_.:-]{1,128}$")
PROJECT_REFERENCE = re.compile(r"^[a-zA-Z0-9_.:-]{1,200}$")
RUN_ID = re.compile(r"^[a-zA-Z0-9_.:-]{1,128}$")
LEASE_MIN, LEASE_MAX = 5, 300
SESSION_STATUSES = ("active", "completed", "failed", "cancelled")


def parse_json(raw: bytes, *, empty_ok: bool = False, nul_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object; NUL is allowed only where it is stored as text (events)."""
    return parse_json_object(raw, empty_ok=empty_ok, nul_ok=nul_ok)


# What the client's zod `uuid()` accepts: RFC 4122 versions 1-8 with the RFC variant, and
# the nil and max UUIDs. Ids the client reads back as UUIDs must pass it.
STRICT_UUID = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    r"|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$",
    re.IGNORECASE,
)


def uuid_param(value: str, name: str) -> str:
    if not STRICT_UUID.match(value):
        raise ApiError(400, f"{name} must be a UUID")
    return value.lower()


def run_id_param(value: str, name: str = "run_id") -> str:
    if not RUN_ID.match(value):
        raise ApiError(400, f"{name} must be 1-128 characters of A-Z a-z 0-9 _ . : -")
    return value


def project_reference(value: str) -> str:
    if not PROJECT_REFERENCE.match(value):
        raise ApiError(
            400, "project_reference must be a project UUID or slug (1-200 of A-Z a-z 0-9 _ . : -)"
        )
    return value


_RULES = {
    "implementation_kind": (IMPLEMENTATION_KIND, "1-64 characters of A-Z a-z 0-9 _ -"),
    "worker_key": (WORKER_KEY, "1-128 characters of A-Z a-z 0-9 _ . : -"),
}


def pattern_field(body: dict[str, Any], name: str, prefix: str = "") -> str:
    """A required implementation_kind or worker_key; `prefix` names where it sits."""
    pattern, rule = _RULES[name]
    value = body.get(name)
    if value is None:
        raise ApiError(400, f"{prefix}{name} is required")
    if not isinstance(value, str) or not pattern.match(value):
        raise ApiError(400, f"{prefix}{name} must be {rule}")
    return value


def opt_text(
    body: dict[str, Any], name: str, max_len: int, *, label: str | None = None
) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        raise ApiError(400, f"{label or name} must be a string of 1-{max_len} characters")
    return value


def opt_object(
    body: dict[str, Any], name: str, *, label: str | None = None
) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, f"{label or name} must be an object")
    return value


def lease_seconds(body: dict[str, Any]) -> int:
    value = body.get("lease_duration_seconds")
    if value is None:
        raise ApiError(400, "lease_duration_seconds is required")
    if not is_number(value) or int(value) != value or not LEASE_MIN <= value <= LEASE_MAX:
        raise ApiError(
            400, f"lease_duration_seconds must be an integer between {LEASE_MIN} and {LEASE_MAX}"
        )
    return int(value)


def opt_cursor(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not is_number(value) or int(value) != value or value < 0:
        raise ApiError(400, f"{name} must be a non-negative integer")
    return int(value)


def opt_uuid(body: dict[str, Any], name: str, *, label: str | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{label or name} must be a UUID")
    return uuid_param(value, label or name)


def request_snapshot(value: Any, field: str) -> dict[str, Any]:
    """An AG-UI-style request snapshot (messages, tools, context, forwardedProps) in the shape
    the worker client's zod schema accepts; a plain string becomes one user message."""
    if isinstance(value, str):
        return {
            "messages": [
                {
                    "id": str(uuid.uuid4()),
                    "role": "user",
                    "parts": [{"type": "text", "text": value}],
                }
            ],
            "tools": [],
            "context": [],
            "forwardedProps": {},
        }
    if not isinstance(value, dict):
        raise ApiError(400, f"{field} must be an object with messages, or a string")
    messages = value.get("messages")
    if not isinstance(messages, list):
        raise ApiError(400, f"{field}.messages must be an array")
    for i, message in enumerate(messages):
        _check_message(message, f"{field}.messages[{i}]")
    snapshot = dict(value)
    for name in ("tools", "context"):
        items = snapshot.setdefault(name, [])
        if not isinstance(items, list):
            raise ApiError(400, f"{field}.{name} must be an array")
    props = snapshot.get("forwardedProps")
    if props is not None and not isinstance(props, dict):
        raise ApiError(400, f"{field}.forwardedProps must be an object")
    return snapshot


def _check_message(message: Any, field: str) -> None:
    if not isinstance(message, dict):
        raise ApiError(400, f"{field} must be an object")
    for name in ("id", "role"):
        if not isinstance(message.get(name), str):
            raise ApiError(400, f"{field}.{name} must be a string")
    parts = message.setdefault("parts", [])
    if not isinstance(parts, list) or not all(
        isinstance(p, dict) and isinstance(p.get("type"), str) for p in parts
    ):
        raise ApiError(400, f"{field}.parts must be an array of objects with a string type")
    if "metadata" in message and not isinstance(message["metadata"], dict):
        raise ApiError(400, f"{field}.metadata must be an object")
    if "createdAt" in message and not isinstance(message["createdAt"], str):
        raise ApiError(400, f"{field}.createdAt must be a string")


def json_size(value: Any) -> int:
    """Bytes of the compact UTF-8 JSON encoding, as the client measures an event."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def query_int(value: str | None, name: str, low: int, high: int, default: int) -> int:
    """An integer query parameter from `low` to `high`."""
    if value is None:
        return default
    if not value.isdigit() or len(value) > 20 or not low <= int(value) <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}")
    return int(value)


def opt_int(body: dict[str, Any], name: str, low: int, high: int, *, label: str = "") -> int | None:
    value = body.get(name)
    if value is None:
        return None
    integral = is_number(value) and (isinstance(value, int) or float(value).is_integer())
    if not integral or not low <= value <= high:
        raise ApiError(400, f"{label or name} must be an integer from {low} to {high}")
    return int(value)


def opt_choice(
    body: dict[str, Any], name: str, choices: tuple[str, ...], *, label: str = ""
) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if value not in choices:
        raise ApiError(400, f"{label or name} must be one of: " + ", ".join(choices))
    return str(value)


def iso_time(value: Any, name: str) -> int:
    """An ISO 8601 date-time with a time zone, as epoch milliseconds."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return int(moment.timestamp() * 1000)
    raise ApiError(400, f"{name} must be an ISO 8601 date-time with a time zone")
