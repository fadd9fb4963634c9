"""Wire shapes of the environment work API: objects, timestamps and parameter parsing.
The same shapes serve the Qoder (`/api/v1/cloud`) and Anthropic (`/v1`) paths."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from shopfloor.api.envelope import ApiError
from shopfloor.service.work import NO_HEARTBEAT, WORK_STOPPED, work_id_for, work_state
from shopfloor.store.records import ProjectRecord, QueueStats, SessionRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WORK_ID = re.compile(r"^work_[0-9a-f]{32}$")
ENV_ID = re.compile(r"^env_[0-9a-f]{32}$")
NAME_MAX = 256
DESCRIPTION_MAX = 2048
KEY_MAX = 64
VALUE_MAX = 512
SCOPES = ("organization", "account")


def ts(ms: int | None) -> str | None:
    """RFC 3339 UTC with microseconds, e.g. 2026-07-01T08:15:06.120000Z."""
    if ms is None:
        return None
    return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _instant(value: str) -> datetime | None:
    """An RFC 3339 timestamp (with its offset), or None."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or "T" not in value.upper():
        return None
    return parsed


def parse_ts(value: str, name: str) -> int:
    """An RFC 3339 timestamp as epoch milliseconds, exactly."""
    parsed = _instant(value)
    if parsed is None:
        raise ApiError(400, f"{name} must be NO_HEARTBEAT or an RFC 3339 timestamp")
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def created_bound(raw: str | None, name: str, *, upper: bool) -> int | None:
    """A `created_at[gte]`/`created_at[lte]` filter as an inclusive bound in epoch ms: a
    lower bound rounds up and an upper bound down, so a sub-millisecond instant admits no
    record created outside it."""
    if raw is None:
        return None
    parsed = _instant(raw.strip())
    if parsed is None:
        raise ApiError(400, f"{name} must be an RFC 3339 timestamp with its offset")
    since_epoch = parsed - _EPOCH
    ms = timedelta(milliseconds=1)
    return since_epoch // ms if upper else -(-since_epoch // ms)


# -- objects --


def environment(p: ProjectRecord) -> dict[str, Any]:
    archived = p.archived_at is not None
    return {
        "id": p.id,
        "type": "environment",
        "name": p.name,
        "description": p.description,
        "config": p.config,
        "metadata": p.metadata,
        "scope": p.scope,
        "status": "archived" if archived else "ready",
        "archived": archived,
        "archived_at": ts(p.archived_at),
        "created_at": ts(p.created_at),
        "updated_at": ts(p.updated_at),
    }


def work(s: SessionRecord) -> dict[str, Any]:
    state = work_state(s)
    lived = state != "queued"  # a queued item shows no lifecycle times, even after a requeue
    return {
        "id": work_id_for(s.id),
        "type": "work",
        "environment_id": s.queue,
        "data": {"type": "session", "id": s.id},
        "state": state,
        "metadata": s.metadata or {},
        "created_at": ts(s.created_at),
        "acknowledged_at": ts(s.claimed_at) if lived else None,
        "started_at": ts(s.started_at) if lived else None,
        "latest_heartbeat_at": ts(s.last_heartbeat_at) if lived else None,
        "stop_requested_at": ts(s.stop_requested_at) if lived else None,
        "stopped_at": ts(s.ended_at or s.updated_at) if state == WORK_STOPPED else None,
        "secret": None,
    }


def stats(q: QueueStats) -> dict[str, Any]:
    return {
        "type": "work_queue_stats",
        "depth": q.depth,
        "pending": q.pending,
        "oldest_queued_at": ts(q.oldest_queued_at),
        "workers_polling": q.workers_polling,
    }


def page(data: list[dict[str, Any]], has_more: bool, *, forward: bool = True) -> dict[str, Any]:
    first = data[0]["id"] if data else None
    last = data[-1]["id"] if data else None
    return {
        "data": data,
        "first_id": first,
        "last_id": last,
        "has_more": has_more,
        # The SDK pages until next_page is null, re-sending the request with page=<next_page>.
        "next_page": last if has_more and forward else None,
    }


# -- parameters --

INT53_MAX = 2**53 - 1  # the largest integer every JSON client reads exactly


def query_int(raw: str | None, name: str, *, minimum: int, maximum: int = INT53_MAX) -> int | None:
    """An integer query parameter. The default bound keeps arithmetic on it (a time minus a
    duration) inside the 64-bit integers the databases store."""
    if raw is None:
        return None
    value = raw.strip()
    if not value.isdigit() and not (value.startswith("-") and value[1:].isdigit()):
        raise ApiError(400, f"{name} must be an integer")
    if len(value) > 20:
        raise ApiError(400, f"{name} must be an integer between {minimum} and {maximum}")
    number = int(value)
    if number < minimum or number > maximum:
        raise ApiError(400, f"{name} must be an integer between {minimum} and {maximum}")
    return number


def query_bool(raw: str | None, name: str) -> bool | None:
    if raw is None:
        return None
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ApiError(400, f"{name} must be true or false")
    return value == "true"


def list_limit(raw: str | None) -> int:
    limit = query_int(raw, "limit", minimum=1)
    return 20 if limit is None else min(limit, 100)


def cursor(raw: str | None, name: str, pattern: re.Pattern[str]) -> str | None:
    if raw is None:
        return None
    if not pattern.match(raw):
        raise ApiError(400, f"{name} is not a valid cursor")
    return raw


def expected_heartbeat(raw: str | None) -> int | None:
    if raw is None:
        return None
    if raw == "NO_HEARTBEAT":
        return NO_HEARTBEAT
    return parse_ts(raw, "expected_last_heartbeat")


def text(body: Mapping[str, Any], name: str, *, maximum: int, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"{name}: is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name}: must be a string")
    if required and not value.strip():
        raise ApiError(400, f"{name}: must not be empty")
    if len(value) > maximum:
        raise ApiError(400, f"{name}: at most {maximum} characters")
    return value


def metadata_patch(
    body: Mapping[str, Any], *, empty_deletes: bool, allow_null: bool = True
) -> dict[str, str | None] | None:
    """`metadata` as a merge patch: string values set keys, null deletes them (and so does ""
    where the protocol says so)."""
    value = body.get("metadata")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, "metadata: must be an object of string values")
    patch: dict[str, str | None] = {}
    for key, item in value.items():
        if not key or len(key) > KEY_MAX:
            raise ApiError(400, f"metadata: keys must be 1 to {KEY_MAX} characters")
        if item is None and allow_null:
            patch[key] = None
        elif isinstance(item, str):
            if len(item) > VALUE_MAX:
                raise ApiError(400, f"metadata.{key}: at most {VALUE_MAX} characters")
            patch[key] = None if (item == "" and empty_deletes) else item
        else:
            expected = "a string or null" if allow_null else "a string"
            raise ApiError(400, f"metadata.{key}: must be {expected}")
    return patch


def config(body: Mapping[str, Any]) -> dict[str, Any] | None:
    value = body.get("config")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, "config: must be an object")
    if value.get("type") != "self_hosted":
        raise ApiError(400, 'config.type: shopfloor serves only "self_hosted" environments')
    if set(value) != {"type"}:
        raise ApiError(400, "config: a self_hosted config takes no field but type")
    return {"type": "self_hosted"}


def scope(body: Mapping[str, Any]) -> str | None:
    value = body.get("scope")
    if value is not None and value not in SCOPES:
        raise ApiError(400, "scope: must be organization or account")
    return value
