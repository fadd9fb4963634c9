"""The managed session's state machine, as pure functions of its row: each returns the
changes and the events of one write (a compare-and-set on the row; see ManagedLog), or raises
a domain error and nothing is written.

The turn: `idle`; `model` once user input (or the last tool result) makes a model call due,
run by the process that holds the turn lease (owner, epoch, expiry); `tools` while the
calls of the model's last reply wait for results or confirmations. `unfed` holds user
content that has not been sent to the model yet; a claim of the turn moves it into the
transcript (`turn.input`).

A turn has an id (`turn_id`), from the user message that starts it to the idle that ends it
(anything but `requires_action`), stamped on every event of the turn; events between turns
carry none."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from shopfloor.service.errors import InvalidInput, SessionBusy, SessionTerminated
from shopfloor.service.managed import events as ev
from shopfloor.service.managed.model import ModelError, ModelReply
from shopfloor.service.managed.tools import Toolbox
from shopfloor.service.managed.transcript import tool_result_block
from shopfloor.store.managed_records import (
    IDLE,
    RUNNING,
    TERMINATED,
    TURN_IDLE,
    TURN_MODEL,
    TURN_TOOLS,
    ManagedSessionRecord,
)
from shopfloor.store.records import SessionEvent

WORKER_CALL = "tool"  # an agent.tool_use, run by the environment's worker
CUSTOM_CALL = "custom"  # an agent.custom_tool_use, answered by the client
INTERRUPTED = "interrupted by the user"


@dataclass(frozen=True)
class Input:
    """A client event, checked by the protocol adapter: its type and its wire fields."""

    kind: str
    fields: dict[str, Any]


@dataclass
class Step:
    changes: dict[str, Any]
    events: list[SessionEvent]
    kick: bool = False  # a model call is due: try to run it now
    needs_worker: bool = False  # worker calls wait: the session needs a live work item
    claimed: bool = False  # the write also takes the turn lease for this process's runner


@dataclass
class _State:
    """The mutable part of a row while one write is worked out."""

    status: str
    turn: str
    pending: list[dict[str, Any]]
    unfed: list[dict[str, Any]]
    turn_owner: str | None
    turn_epoch: int
    turn_expires_at: int | None
    turn_id: str | None
    events: list[SessionEvent] = field(default_factory=list)
    kick: bool = False
    needs_worker: bool = False

    @classmethod
    def of(cls, r: ManagedSessionRecord) -> _State:
        return cls(
            r.status,
            r.turn,
            copy.deepcopy(r.pending),
            copy.deepcopy(r.unfed),
            r.turn_owner,
            r.turn_epoch,
            r.turn_expires_at,
            r.turn_id,
        )

    def step(self, now: int, **extra: Any) -> Step:
        changes = {
            "status": self.status,
            "turn": self.turn,
            "pending": self.pending,
            "unfed": self.unfed,
            "turn_owner": self.turn_owner,
            "turn_epoch": self.turn_epoch,
            "turn_expires_at": self.turn_expires_at,
            "turn_id": self.turn_id,
            "updated_at": now,
            **extra,
        }
        return Step(changes, self.events, self.kick, self.needs_worker)


# -- client input --


def accept(
    record: ManagedSessionRecord, now: int, inputs: list[Input], *, refuse_busy: bool = False
) -> Step:
    """Apply the events of one send, all or none. With `refuse_busy`, a user message while
    the turn runs (status `running`) is refused rather than answered in the same turn."""
    if record.status == TERMINATED:
        raise SessionTerminated(record.session_id)
    if refuse_busy and record.status == RUNNING and any(i.kind == ev.USER_MESSAGE for i in inputs):
        raise SessionBusy(record.session_id)
    st = _State.of(record)
    sid = record.session_id
    for item in inputs:
        handler = _HANDLERS.get(item.kind, _store_only)
        handler(st, sid, now, item)
    _continue_if_answered(st, sid, now)
    return st.step(now)


def _emit(st: _State, sid: str, now: int, kind: str, **fields: Any) -> SessionEvent:
    if st.turn_id is not None:
        fields["turn_id"] = st.turn_id
    event = ev.wire_event(sid, now, kind, **fields)
    st.events.append(event)
    return event


def _store_only(st: _State, sid: str, now: int, item: Input) -> None:
    _emit(st, sid, now, item.kind, **item.fields)


def _user_message(st: _State, sid: str, now: int, item: Input) -> None:
    if st.turn == TURN_IDLE:
        st.turn_id = ev.new_turn_id()
    _emit(st, sid, now, ev.USER_MESSAGE, **item.fields)
    st.unfed.extend(copy.deepcopy(item.fields["content"]))
    st.needs_worker = True
    if st.turn == TURN_IDLE:
        st.turn = TURN_MODEL
        st.status = RUNNING
        _emit(st, sid, now, ev.STATUS_RUNNING)
    if st.turn == TURN_MODEL:
        st.kick = True


def _open_call(st: _State, call_id: str, kind: str, field_name: str) -> dict[str, Any]:
    for call in st.pending:
        if call["event_id"] == call_id and call["kind"] == kind and call["result"] is None:
            return call
    raise InvalidInput(
        field_name,
        f"{field_name}: {call_id} is not a tool call this session waits for "
        "(unknown, or already answered)",
    )


def _tool_result(st: _State, sid: str, now: int, item: Input) -> None:
    call = _open_call(st, item.fields["tool_use_id"], WORKER_CALL, "tool_use_id")
    _answer(st, sid, now, item, call)


def _custom_tool_result(st: _State, sid: str, now: int, item: Input) -> None:
    call = _open_call(st, item.fields["custom_tool_use_id"], CUSTOM_CALL, "custom_tool_use_id")
    _answer(st, sid, now, item, call)


def _answer(st: _State, sid: str, now: int, item: Input, call: dict[str, Any]) -> None:
    _emit(st, sid, now, item.kind, **item.fields)
    call["result"] = {
        "content": copy.deepcopy(item.fields.get("content") or []),
        "is_error": bool(item.fields.get("is_error")),
    }


def _confirmation(st: _State, sid: str, now: int, item: Input) -> None:
    call = _open_call(st, item.fields["tool_use_id"], WORKER_CALL, "tool_use_id")
    if call["permission"] != "ask" or call.get("confirmed") is not None:
        raise InvalidInput(
            "tool_use_id",
            f"tool_use_id: {call['event_id']} does not wait for a confirmation",
        )
    _emit(st, sid, now, ev.USER_TOOL_CONFIRMATION, **item.fields)
    call["confirmed"] = item.fields["result"]
    if item.fields["result"] == "deny":
        why = item.fields.get("deny_message") or "the user denied this tool call"
        call["result"] = {"content": [{"type": "text", "text": f"denied: {why}"}], "is_error": True}


def _interrupt(st: _State, sid: str, now: int, item: Input) -> None:
    _emit(st, sid, now, ev.USER_INTERRUPT, **item.fields)
    if st.turn == TURN_IDLE:
        return
    if st.turn == TURN_TOOLS:
        for call in st.pending:
            if call["result"] is None:
                text = [{"type": "text", "text": INTERRUPTED}]
                call["result"] = {"content": text, "is_error": True}
        st.unfed[:0] = _result_blocks(st.pending)
        st.pending = []
    _release_turn(st, fence=True)
    st.status = IDLE
    _emit(st, sid, now, ev.STATUS_IDLE, stop_reason={"type": "end_turn"})
    st.turn_id = None


_HANDLERS = {
    ev.USER_MESSAGE: _user_message,
    ev.USER_TOOL_RESULT: _tool_result,
    ev.USER_CUSTOM_TOOL_RESULT: _custom_tool_result,
    ev.USER_TOOL_CONFIRMATION: _confirmation,
    ev.USER_INTERRUPT: _interrupt,
}


def _result_blocks(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [tool_result_block(call["toolu_id"], call["result"]) for call in pending]


def _continue_if_answered(st: _State, sid: str, now: int) -> None:
    """Once every call of the turn has its answer, the results go to the model."""
    if st.turn != TURN_TOOLS or any(call["result"] is None for call in st.pending):
        return
    st.unfed[:0] = _result_blocks(st.pending)
    st.pending = []
    st.turn = TURN_MODEL
    st.status = RUNNING
    st.kick = True
    _emit(st, sid, now, ev.STATUS_RUNNING)


def _release_turn(st: _State, *, fence: bool) -> None:
    st.turn = TURN_IDLE
    st.turn_owner = None
    st.turn_expires_at = None
    if fence:  # whoever runs a model call for this turn can no longer write its reply
        st.turn_epoch += 1


# -- the turn's model call --


def claim(
    record: ManagedSessionRecord, now: int, owner: str, lease_ms: int
) -> tuple[Step, list[dict[str, Any]]] | None:
    """Take the turn lease to run its model call, moving unfed input into the transcript;
    None if no call is due or another process holds a live lease. Returns the step and the
    content moved."""
    if record.turn != TURN_MODEL or record.status == TERMINATED:
        return None
    held = record.turn_owner is not None and (record.turn_expires_at or 0) >= now
    if held and record.turn_owner != owner:
        return None
    st = _State.of(record)
    st.turn_owner = owner
    st.turn_epoch += 1
    st.turn_expires_at = now + lease_ms
    fed = st.unfed
    if fed:
        st.events.append(ev.internal_event(record.session_id, now, ev.TURN_INPUT, content=fed))
        st.unfed = []
    return st.step(now), fed


def claim_with(row: ManagedSessionRecord, step: Step, now: int, owner: str, lease_ms: int) -> Step:
    """`step`, and in the same write the claim of the model call it made due: the process
    that stores the input that makes a call due runs the call, without a write of its own."""
    if not step.kick:
        return step
    after = dataclasses.replace(row, **step.changes)
    claimed = claim(after, now, owner, lease_ms)
    if claimed is None:
        return step
    taken = claimed[0]
    return Step(
        {**step.changes, **taken.changes},
        step.events + taken.events,
        kick=True,
        needs_worker=step.needs_worker,
        claimed=True,
    )


def holds(record: ManagedSessionRecord, owner: str, epoch: int) -> bool:
    return (
        record.turn == TURN_MODEL
        and record.turn_owner == owner
        and record.turn_epoch == epoch
        and record.status != TERMINATED
    )


def renew(record: ManagedSessionRecord, now: int, owner: str, epoch: int, lease_ms: int) -> Step:
    if not holds(record, owner, epoch):
        raise LeaseLost
    return Step({"turn_expires_at": now + lease_ms}, [])


class LeaseLost(Exception):
    """The turn lease moved on (interrupt, termination, expiry and a takeover)."""


def finish(
    record: ManagedSessionRecord,
    now: int,
    owner: str,
    epoch: int,
    outcome: ModelReply | ModelError,
    tools: Toolbox,
) -> Step:
    """Write the model call's outcome, only while the lease is still ours."""
    if not holds(record, owner, epoch):
        raise LeaseLost
    st = _State.of(record)
    sid = record.session_id
    if isinstance(outcome, ModelError):
        _release_turn(st, fence=False)
        st.status = IDLE
        error = {
            "type": outcome.kind,
            "message": outcome.message,
            "retry_status": {"type": "exhausted"},
        }
        _emit(st, sid, now, ev.SESSION_ERROR, error=error)
        _emit(st, sid, now, ev.STATUS_IDLE, stop_reason={"type": "retries_exhausted"})
        st.turn_id = None
        return st.step(now)
    st.events.append(
        ev.internal_event(
            sid,
            now,
            ev.TURN_REPLY,
            content=outcome.content,
            stop_reason=outcome.stop_reason,
            usage=outcome.usage,
        )
    )
    calls = _emit_blocks(st, sid, now, outcome.content, tools)
    usage = dict(record.usage)
    for key, value in outcome.usage.items():
        usage[key] = usage.get(key, 0) + value
    if calls:
        st.pending = calls
        st.turn = TURN_TOOLS
        st.turn_owner = None
        st.turn_expires_at = None
        waiting = [c["event_id"] for c in calls if c["result"] is None]
        if waiting:
            st.status = IDLE
            st.needs_worker = any(c["kind"] == WORKER_CALL for c in calls if c["result"] is None)
            _emit(
                st,
                sid,
                now,
                ev.STATUS_IDLE,
                stop_reason={"type": "requires_action", "event_ids": waiting},
            )
        else:
            _continue_if_answered(st, sid, now)
    elif st.unfed:  # input arrived during the call: answer it in the same turn
        st.kick = True
    else:
        _release_turn(st, fence=False)
        st.status = IDLE
        reason = "refusal" if outcome.stop_reason == "refusal" else "end_turn"
        _emit(st, sid, now, ev.STATUS_IDLE, stop_reason={"type": reason})
        st.turn_id = None
    return st.step(now, usage=usage)


def _emit_blocks(
    st: _State, sid: str, now: int, content: list[dict[str, Any]], tools: Toolbox
) -> list[dict[str, Any]]:
    """The reply's blocks as agent events; returns its tool calls as pending calls."""
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block["type"]
        if kind == "text" and block["text"]:
            _emit(st, sid, now, ev.AGENT_MESSAGE, content=[{"type": "text", "text": block["text"]}])
        elif kind in ("thinking", "redacted_thinking"):
            _emit(st, sid, now, ev.AGENT_THINKING)
        elif kind == "tool_use":
            calls.append(_call(st, sid, now, block, tools))
    return calls


def _call(st: _State, sid: str, now: int, block: dict[str, Any], tools: Toolbox) -> dict[str, Any]:
    name = block["name"]
    call: dict[str, Any] = {"toolu_id": block["id"], "name": name, "result": None}
    if name in tools.worker:
        permission = tools.worker[name]
        event = _emit(
            st,
            sid,
            now,
            ev.AGENT_TOOL_USE,
            name=name,
            input=block["input"],
            evaluated_permission=permission,
        )
        return {
            **call,
            "event_id": ev.event_id(event),
            "kind": WORKER_CALL,
            "permission": permission,
            "confirmed": None,
        }
    if name in tools.custom:
        event = _emit(st, sid, now, ev.AGENT_CUSTOM_TOOL_USE, name=name, input=block["input"])
        return {**call, "event_id": ev.event_id(event), "kind": CUSTOM_CALL, "permission": "allow"}
    # A tool the agent does not have: answered here, so the model hears of its mistake.
    text = f"unknown tool {name!r}: this agent has no such tool"
    return {
        **call,
        "event_id": ev.new_event_id(),
        "kind": "unknown",
        "permission": "allow",
        "result": {"content": [{"type": "text", "text": text}], "is_error": True},
    }


# -- the hard end --


def terminate(record: ManagedSessionRecord, now: int, *, deleted: bool = False) -> Step:
    """Archive, delete or an operator stop: the session ends for good."""
    st = _State.of(record)
    sid = record.session_id
    extra: dict[str, Any] = {}
    if deleted:
        extra["deleted_at"] = record.deleted_at or now
    if record.status != TERMINATED:
        _release_turn(st, fence=True)
        st.pending = []
        st.status = TERMINATED
        _emit(st, sid, now, ev.STATUS_TERMINATED)
        st.turn_id = None
    if deleted and record.deleted_at is None:
        _emit(st, sid, now, ev.SESSION_DELETED)
    return st.step(now, **extra)
