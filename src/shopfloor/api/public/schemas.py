"""Shapes of the public Sessions API (rensei-platform.md §2): the reference's names, with the
item shapes the Go client and the AgentFactory handlers use where the reference leaves them
empty. Times are ISO 8601 unless the name says milliseconds; durations are seconds."""

from __future__ import annotations

from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, Field, StrictStr

from shopfloor.api.operator.schemas import RequestBody
from shopfloor.api.timefmt import iso
from shopfloor.service.public_sessions import public_status, session_hash
from shopfloor.store.records import CLAIMED, SessionEvent, SessionRecord, public_id_of

ActivityType = Literal["thought", "action", "response", "error", "progress"]
ACTIVITY_TYPES = get_args(ActivityType)
CLAIM_STUCK_MS = 5 * 60_000
LONG_RUNNING_MS = 2 * 3600_000


class SessionHealth(BaseModel):
    """The session list's health dot: green, yellow (LongRunning, StaleHeartbeat) or red
    (ClaimStuck). The reference names the signals but not the fields (shopfloor's shape)."""

    status: Literal["green", "yellow", "red"]
    signals: list[str]


class PublicSessionItem(BaseModel):
    id: str = Field(description="The public id: 16 hex digits")
    sessionId: str = Field(description="The raw session id (linearSessionId)")
    identifier: str | None = Field(description="The issue identifier, e.g. ENG-42")
    status: str = Field(description="queued, parked, working, completed, failed or stopped")
    workType: str | None
    projectName: str | None
    startedAt: str = Field(description="When a worker claimed it (else when it was created)")
    duration: int = Field(description="Seconds from startedAt to its end (or now)")
    costUsd: float | None = None
    provider: str | None = None
    health: SessionHealth


class PublicSessionList(BaseModel):
    sessions: list[PublicSessionItem] = Field(description="Newest first")
    count: int
    nextCursor: str | None = Field(description="Pass as `cursor` for the next page")
    timestamp: str


class PublicTimeline(BaseModel):
    created: str
    queued: str | None = None
    started: str | None = None
    completed: str | None = None


class PublicSessionDetail(PublicSessionItem):
    timeline: PublicTimeline
    branch: str | None = None
    issueTitle: str | None = None
    inputTokens: int | None = None
    outputTokens: int | None = None
    sessionHash: str = Field(description="Lets a caller without a key read the activities")


class PublicSessionReply(BaseModel):
    session: PublicSessionDetail
    timestamp: str


class PublicPromptBody(RequestBody):
    prompt: StrictStr = Field(min_length=1, max_length=100_000)


class PublicPromptReply(BaseModel):
    delivered: bool
    promptId: str
    sessionId: str = Field(description="The public id")
    status: str
    sessionStatus: str = Field(description="The same as status (the Go client reads this)")


class PublicStopReply(BaseModel):
    stopped: bool
    sessionId: str = Field(description="The public id")
    previousStatus: str
    newStatus: str


class PublicActivity(BaseModel):
    id: str
    type: ActivityType
    content: str
    toolName: str | None = None
    timestamp: str


class PublicReconnectBody(RequestBody):
    cursor: StrictStr | int | None = Field(
        default=None, description="The last activity the client has (its id)"
    )
    lastEventId: StrictStr | int | None = Field(default=None, description="Alias of cursor")


class PublicReconnectReply(BaseModel):
    reconnected: bool
    sessionId: str = Field(description="The public id")
    sessionStatus: str
    missedEvents: int = Field(
        description="Activities after the cursor (read them from /session-activities); "
        "counted up to 10,000"
    )


class WhoAmI(BaseModel):
    """Who the bearer credential is (shopfloor's shape: the Go client's `whoami` reads it,
    the reference does not document one)."""

    kind: Literal["admin", "api_key", "m2m"]
    identity: str = Field(description='"admin", the API key id or the M2M client id')
    orgId: str | None = Field(description="None for the admin key: every organisation")
    orgSlug: str | None
    projects: list[str] | Literal["all"]
    scopes: list[str]


class PublicActivityPage(BaseModel):
    activities: list[PublicActivity] = Field(description="Oldest first")
    cursor: str | None = Field(description="The last activity's id: pass it for newer ones")
    sessionStatus: str


class PublicStats(BaseModel):
    workersOnline: int
    agentsWorking: int
    queueDepth: int
    completedToday: int
    availableCapacity: int
    totalCostToday: float
    totalCostAllTime: float
    sessionCountToday: int
    timestamp: str


def _ends_at(s: SessionRecord, now: int) -> int:
    if s.is_terminal:
        return s.ended_at or s.updated_at
    return now


def health(s: SessionRecord, now: int) -> SessionHealth:
    signals = []
    if s.status == CLAIMED and s.claimed_at and now - s.claimed_at > CLAIM_STUCK_MS:
        signals.append("ClaimStuck")
    if s.is_live and s.lease_expires_at is not None and s.lease_expires_at < now:
        signals.append("StaleHeartbeat")
    if s.is_live and s.claimed_at and now - s.claimed_at > LONG_RUNNING_MS:
        signals.append("LongRunning")
    color: Literal["green", "yellow", "red"] = "green"
    if signals:
        color = "red" if "ClaimStuck" in signals else "yellow"
    return SessionHealth(status=color, signals=signals)


def _provider(s: SessionRecord) -> str | None:
    profile = s.extra.get("resolvedProfile")
    if isinstance(profile, dict) and isinstance(profile.get("provider"), str):
        return str(profile["provider"])
    return None


def _item_fields(s: SessionRecord, now: int) -> dict[str, Any]:
    started = s.claimed_at or s.created_at
    return {
        "id": s.public_id or public_id_of(s.id),
        "sessionId": s.id,
        "identifier": s.issue_identifier,
        "status": public_status(s),
        "workType": s.work_type,
        "projectName": s.project,
        "startedAt": iso(started),
        "duration": max(0, _ends_at(s, now) - started) // 1000,
        "costUsd": s.total_cost_usd,
        "provider": _provider(s),
        "health": health(s, now),
    }


def item(s: SessionRecord, now: int) -> PublicSessionItem:
    return PublicSessionItem(**_item_fields(s, now))


def detail(s: SessionRecord, now: int) -> PublicSessionDetail:
    branch = s.extra.get("branch")
    return PublicSessionDetail(
        **_item_fields(s, now),
        timeline=PublicTimeline(
            created=iso(s.created_at) or "",
            queued=iso(s.queued_at),
            started=iso(s.claimed_at),
            completed=iso(_ends_at(s, now)) if s.is_terminal else None,
        ),
        branch=branch if isinstance(branch, str) else None,
        issueTitle=s.title,
        inputTokens=s.input_tokens,
        outputTokens=s.output_tokens,
        sessionHash=session_hash(s.id),
    )


def activity(ev: SessionEvent) -> PublicActivity | None:
    """A timeline entry as a public activity (None for what is not one, e.g. status)."""
    data = ev.data
    tool = data.get("toolName")
    if ev.kind == "activity":
        kind = data.get("type")
        content, kind = data.get("content"), kind if kind in ACTIVITY_TYPES else "thought"
    elif ev.kind == "progress":
        content, kind = data.get("message") or data.get("milestone"), "progress"
    elif ev.kind == "tool-error":
        content, kind = data.get("errorMessage"), "error"
    elif ev.kind == "completion":
        content, kind = data.get("summary"), "response"
    else:
        return None
    return PublicActivity(
        id=str(ev.id),
        type=cast(ActivityType, kind),
        content=content if isinstance(content, str) else "",
        toolName=tool if isinstance(tool, str) else None,
        timestamp=iso(ev.at) or "",
    )
