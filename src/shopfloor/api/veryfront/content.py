"""Checking what people put in conversations: message parts (veryfront/chat's MessagePart
union) and the fields and values of input-request forms (veryfront/agent's human-input
schemas). Every refusal is a 400 that names the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shopfloor.api.envelope import ApiError, is_number
from shopfloor.api.veryfront import parse

MAX_PARTS = 500
MAX_FIELDS = 100
TOOL_STATES = ("streaming", "pending", "completed", "error")
MESSAGE_ROLES = ("user", "assistant", "system", "tool")
MESSAGE_STATUSES = ("pending", "streaming", "completed", "error", "failed", "cancelled", "stopped")

Check = Callable[[Any], bool]


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _uuid(value: Any) -> bool:
    return isinstance(value, str) and parse.STRICT_UUID.match(value) is not None


def _object(value: Any) -> bool:
    return isinstance(value, dict)


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _anything(_value: Any) -> bool:
    return True


# Per part type: its keys, each (check, required, what the check wants).
_PARTS: dict[str, dict[str, tuple[Check, bool, str]]] = {
    "text": {"text": (_string, True, "a string")},
    "image": {
        "upload_id": (_uuid, True, "a UUID"),
        "media_type": (_string, True, "a string"),
        "url": (_string, False, "a string"),
    },
    "file": {
        "upload_id": (_uuid, True, "a UUID"),
        "media_type": (_string, True, "a string"),
        "filename": (_string, False, "a string"),
        "url": (_string, False, "a string"),
    },
    "tool_call": {
        "id": (_string, True, "a string"),
        "name": (_string, True, "a string"),
        "input": (_object, True, "an object"),
        "state": (lambda v: v in TOOL_STATES, True, "one of: " + ", ".join(TOOL_STATES)),
    },
    "tool_result": {
        "tool_call_id": (_string, True, "a string"),
        "output": (_anything, False, ""),
        "is_error": (_boolean, False, "a boolean"),
    },
    "reasoning": {
        "text": (_string, False, "a string"),
        "signature": (_string, False, "a string"),
        "redactedData": (_string, False, "a string"),
    },
    "citation": {
        "source_id": (_string, True, "a string"),
        "url": (_string, False, "a string"),
        "title": (_string, False, "a string"),
        "quote": (_string, False, "a string"),
    },
    "step_start": {},
    "error": {"code": (_string, True, "a string"), "message": (_string, True, "a string")},
    "data": {"name": (_string, True, "a string"), "value": (_anything, False, "")},
}


def message_parts(value: Any, field: str = "parts") -> list[dict[str, Any]]:
    """The parts, each with only the keys its type has."""
    if not isinstance(value, list) or len(value) > MAX_PARTS:
        raise ApiError(400, f"{field} must be an array of at most {MAX_PARTS} parts")
    return [_part(part, f"{field}[{i}]") for i, part in enumerate(value)]


def _part(part: Any, field: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise ApiError(400, f"{field} must be an object")
    kind = part.get("type")
    keys = _PARTS.get(kind) if isinstance(kind, str) else None
    if keys is None:
        raise ApiError(400, f"{field}.type must be one of: " + ", ".join(_PARTS))
    kept: dict[str, Any] = {"type": kind}
    for name, (check, required, wants) in keys.items():
        if name not in part:
            if required:
                raise ApiError(400, f"{field}.{name} is required")
            continue
        if not check(part[name]):
            raise ApiError(400, f"{field}.{name} must be {wants}")
        kept[name] = part[name]
    return kept


# Input-request form fields: the keys every field has, then each type's own keys.
_TEXT_TYPES = ("text", "email", "url", "password", "number")
FIELD_TYPES = (*_TEXT_TYPES, "textarea", "select", "radio", "checkbox", "confirm")


def _text(limit: int) -> tuple[Check, str]:
    return (lambda v: isinstance(v, str) and len(v) <= limit), f"a string of at most {limit}"


def _count(minimum: int) -> tuple[Check, str]:
    return (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
        f"an integer of at least {minimum}",
    )


_NUMBER: tuple[Check, str] = (is_number, "a number")
_BOOL: tuple[Check, str] = (_boolean, "a boolean")
_ANY_TEXT: tuple[Check, str] = (_string, "a string")
_FIELD_COMMON: dict[str, tuple[Check, str]] = {
    "description": _text(1024),
    "required": _BOOL,
    "secret": _BOOL,
}
_TEXT_KEYS = {
    "placeholder": _text(512),
    "defaultValue": _ANY_TEXT,
    "minLength": _count(0),
    "maxLength": _count(1),
}
_FIELD_KEYS: dict[str, dict[str, tuple[Check, str]]] = {
    **{
        kind: {**_TEXT_KEYS, "pattern": _text(512), "min": _NUMBER, "max": _NUMBER}
        for kind in _TEXT_TYPES
    },
    "textarea": {**_TEXT_KEYS, "rows": _count(1)},
    "select": {"defaultValue": _ANY_TEXT, "placeholder": _text(512)},
    "radio": {"defaultValue": _ANY_TEXT},
    "checkbox": {"defaultValue": _BOOL},
    "confirm": {"confirmLabel": _text(64), "denyLabel": _text(64)},
}


def form_fields(value: Any) -> list[dict[str, Any]]:
    """The fields, checked, kept exactly as sent (the client reads them back)."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_FIELDS:
        raise ApiError(400, f"fields must be an array of 1-{MAX_FIELDS} fields")
    names: set[str] = set()
    for i, field in enumerate(value):
        name = _field(field, f"fields[{i}]")
        if name in names:
            raise ApiError(400, f"fields[{i}].name repeats the name {name!r}")
        names.add(name)
    return value


def _field(field: Any, where: str) -> str:
    if not isinstance(field, dict):
        raise ApiError(400, f"{where} must be an object")
    kind = field.get("type")
    if kind not in FIELD_TYPES:
        raise ApiError(400, f"{where}.type must be one of: " + ", ".join(FIELD_TYPES))
    for key, limit in (("name", 128), ("label", 256)):
        text = field.get(key)
        if not isinstance(text, str) or not 1 <= len(text) <= limit:
            raise ApiError(400, f"{where}.{key} must be a string of 1-{limit} characters")
    for key, (check, wants) in {**_FIELD_COMMON, **_FIELD_KEYS[kind]}.items():
        if key in field and not check(field[key]):
            raise ApiError(400, f"{where}.{key} must be {wants}")
    if kind in ("select", "radio"):
        _options(field.get("options"), f"{where}.options")
    return str(field["name"])


def _options(value: Any, where: str) -> None:
    if not isinstance(value, list) or not value:
        raise ApiError(400, f"{where} must be an array of at least 1 option")
    for i, option in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(option, dict):
            raise ApiError(400, f"{at} must be an object")
        for key in ("value", "label"):
            if not isinstance(option.get(key), str):
                raise ApiError(400, f"{at}.{key} must be a string")
        if "description" in option and not isinstance(option["description"], str):
            raise ApiError(400, f"{at}.description must be a string")
        if "recommended" in option and not isinstance(option["recommended"], bool):
            raise ApiError(400, f"{at}.recommended must be a boolean")


def form_values(value: Any) -> dict[str, Any]:
    """`values`: names to a string, boolean, number or null."""
    if not isinstance(value, dict):
        raise ApiError(400, "values must be an object")
    for name, item in value.items():
        if item is not None and not isinstance(item, str | bool) and not is_number(item):
            raise ApiError(400, f"values.{name} must be a string, boolean, number or null")
    return value
