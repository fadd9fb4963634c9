"""The event log of a managed session: event kinds, and how one is made. An event is a row of
the session's timeline whose kind is the event type and whose data holds the event's wire
fields (its `id` included); its `at` is the wire's `processed_at`."""

from __future__ import annotations

from typing import Any

from shopfloor.ids import uuid7_hex
from shopfloor.store.records import SessionEvent

USER_MESSAGE = "user.message"
USER_TOOL_RESULT = "user.tool_result"
USER_CUSTOM_TOOL_RESULT = "user.custom_tool_result"
USER_TOOL_CONFIRMATION = "user.tool_confirmation"
USER_INTERRUPT = "user.interrupt"
USER_DEFINE_OUTCOME = "user.define_outcome"
SYSTEM_MESSAGE = "system.message"
AGENT_MESSAGE = "agent.message"
AGENT_THINKING = "agent.thinking"
AGENT_TOOL_USE = "agent.tool_use"
AGENT_CUSTOM_TOOL_USE = "agent.custom_tool_use"
STATUS_RUNNING = "session.status_running"
STATUS_IDLE = "session.status_idle"
STATUS_TERMINATED = "session.status_terminated"
SESSION_ERROR = "session.error"
SESSION_DELETED = "session.deleted"

# What a client may send (POST …/events and a session's initial_events).
SENDABLE = (
    USER_MESSAGE,
    USER_TOOL_RESULT,
    USER_CUSTOM_TOOL_RESULT,
    USER_TOOL_CONFIRMATION,
    USER_INTERRUPT,
    USER_DEFINE_OUTCOME,
    SYSTEM_MESSAGE,
)
# Every kind that is a wire event (history and stream); nothing else of the timeline is.
WIRE_KINDS = (
    *SENDABLE,
    AGENT_MESSAGE,
    AGENT_THINKING,
    AGENT_TOOL_USE,
    AGENT_CUSTOM_TOOL_USE,
    STATUS_RUNNING,
    STATUS_IDLE,
    STATUS_TERMINATED,
    SESSION_ERROR,
    SESSION_DELETED,
)
# After these the session takes no input and its streams end.
FINAL_KINDS = (STATUS_TERMINATED, SESSION_DELETED)

# The model's transcript, kept in the timeline beside the wire events but never shown on the
# wire: `turn.input` is user-role content as it was sent to the model, `turn.reply` the
# model's reply as it came back. Replayed in order they are the conversation.
TURN_INPUT = "turn.input"
TURN_REPLY = "turn.reply"
TRANSCRIPT_KINDS = (TURN_INPUT, TURN_REPLY)


def topic(session_id: str) -> str:
    """The notifier topic published after each write to the session's log."""
    return "managed:" + session_id


def new_event_id() -> str:
    return "sevt_" + uuid7_hex()


def new_turn_id() -> str:
    return "turn_" + uuid7_hex()


def wire_event(session_id: str, at: int, kind: str, **fields: Any) -> SessionEvent:
    """A wire event with a new id; `fields` are its other wire fields."""
    return SessionEvent(
        session_id=session_id, at=at, kind=kind, data={"id": new_event_id(), **fields}
    )


def internal_event(session_id: str, at: int, kind: str, **fields: Any) -> SessionEvent:
    return SessionEvent(session_id=session_id, at=at, kind=kind, data=dict(fields))


def event_id(event: SessionEvent) -> str:
    return str(event.data["id"])
