"""Managed sessions: made from an agent in a self-hosted environment, talked to with events,
watched as a stream, ended by archive, delete or an operator stop.

A managed session is a session row (its work item in the environment's queue) plus its
managed row; its events are the session's timeline. A session belongs to its environment's
organisation (the session row's `org_id`): a key of another organisation does not see it, and
a key limited to one environment sees only the sessions of that environment."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shopfloor.clock import Clock
from shopfloor.ids import new_session_id
from shopfloor.service.environments import Environments, merge_metadata
from shopfloor.service.errors import InvalidInput, ManagedSessionNotFound, SessionTerminated
from shopfloor.service.live_feed import Ended, Item, LiveFeeds, Quiet
from shopfloor.service.managed import events as ev
from shopfloor.service.managed import state
from shopfloor.service.managed.agents import Agents
from shopfloor.service.managed.log import ManagedLog
from shopfloor.service.managed.scope import Scope
from shopfloor.service.managed.state import Input, Step
from shopfloor.service.notifier import Notifier
from shopfloor.store import Store
from shopfloor.store.managed_records import (
    IDLE,
    TERMINATED,
    TURN_IDLE,
    EventQuery,
    ManagedFilter,
    ManagedSessionRecord,
)
from shopfloor.store.records import PENDING, SessionEvent, SessionRecord

MANAGED_WORK_TYPE = "managed"
KEEPALIVE_SECONDS = 15.0


class TurnKicker(Protocol):
    def kick(self, session_id: str) -> None:
        """Run the session's due model call in this process, if no other runs it."""
        ...

    def claim_with(self, row: ManagedSessionRecord, step: Step, now: int) -> Step:
        """`step` with the claim of the model call it makes due, for this process."""
        ...

    def start_claimed(self, record: ManagedSessionRecord) -> None:
        """Run the model call whose lease `record` shows this process holding."""
        ...


@dataclass(frozen=True)
class AgentRef:
    agent_id: str
    version: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # model, system, tools, …


@dataclass(frozen=True)
class NewManagedSession:
    environment_id: str
    agent: AgentRef
    initial_events: list[Input] = field(default_factory=list)
    title: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    resources: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class SessionPage:
    items: list[ManagedSessionRecord]
    has_more: bool


@dataclass(frozen=True)
class EventPage:
    items: list[SessionEvent]
    has_more: bool


class ManagedSessions:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        notifier: Notifier,
        turns: TurnKicker,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        live: LiveFeeds | None = None,
    ) -> None:
        self.store = store
        self.live = live or LiveFeeds(notifier)  # shared readers of the event streams
        self.clock = clock
        self.notifier = notifier
        self.turns = turns
        self.keepalive_seconds = keepalive_seconds
        self.log = ManagedLog(store, clock, notifier)
        self.agents = Agents(store, clock)
        self.environments = Environments(store, clock)

    # -- reading --

    async def get(self, session_id: str, scope: Scope) -> ManagedSessionRecord:
        record = _visible(await self.store.get_managed_session(session_id), session_id, scope)
        if scope.org_id is not None and scope.environment is None:
            # An organisation-wide key: the session row says whose it is. (A key limited to
            # an environment is of that environment's organisation, and so are its sessions.)
            session = await self.store.get_session(session_id)
            if session is None or session.org_id != scope.org_id:
                raise ManagedSessionNotFound(session_id)
        return record

    async def list_page(self, flt: ManagedFilter) -> SessionPage:
        found = await self.store.list_managed_sessions(
            dataclasses.replace(flt, limit=flt.limit + 1)
        )
        return SessionPage(found[: flt.limit], len(found) > flt.limit)

    async def events(self, session_id: str, scope: Scope, query: EventQuery) -> EventPage:
        await self.get(session_id, scope)
        found = await self.store.managed_events(
            session_id, dataclasses.replace(query, limit=query.limit + 1)
        )
        return EventPage(found[: query.limit], len(found) > query.limit)

    # -- creating --

    async def create(self, new: NewManagedSession, scope: Scope) -> ManagedSessionRecord:
        environment = await self.environments.accepting(new.environment_id, scope.org_id)
        queue = environment.id
        agent = await self.agents.get(new.agent.agent_id, scope, new.agent.version)
        if agent.head.archived_at is not None:
            raise InvalidInput("agent", f"agent: {agent.head.id} is archived")
        now = self.clock.now_ms()
        sid = new_session_id()
        snapshot = {**agent.snapshot(), **new.agent.overrides}
        managed = ManagedSessionRecord(
            session_id=sid,
            environment_id=queue,
            agent=snapshot,
            agent_id=agent.head.id,
            agent_version=agent.version.version,
            status=IDLE,
            title=new.title,
            metadata=merge_metadata({}, new.metadata),
            resources=new.resources,
            created_at=now,
            updated_at=now,
        )
        step = None
        if new.initial_events:
            step = state.accept(managed, now, new.initial_events)
            step = self.turns.claim_with(managed, step, now)
            managed = dataclasses.replace(managed, **step.changes)
        session = SessionRecord(
            id=sid,
            queue=queue,
            status=PENDING,
            priority=3,
            queued_at=now,
            created_at=now,
            updated_at=now,
            title=new.title,
            prompt=_first_text(new.initial_events),
            work_type=MANAGED_WORK_TYPE,
            agent_id=agent.head.id,
            metadata=dict(managed.metadata),
            org_id=environment.org_id,
        )
        created = SessionEvent(
            session_id=sid,
            at=now,
            kind="status",
            status=PENDING,
            reason=f"managed session of agent {agent.head.id} v{agent.version.version}",
        )
        await self.store.insert_managed_session(
            session, created, managed, step.events if step else []
        )
        await self.notifier.notify(queue)
        if step is not None:
            await self._after(managed, step)
        return managed

    # -- sending --

    async def send(
        self,
        session_id: str,
        scope: Scope,
        inputs: list[Input],
        *,
        refuse_busy: bool = False,
    ) -> list[SessionEvent]:
        """Store a client's events and act on them. `refuse_busy`: a user message while the
        turn runs is a SessionBusy conflict instead of input for the same turn."""
        if scope.org_id is not None and scope.environment is None:
            await self.get(session_id, scope)  # (not the worker's path: its key is narrower)

        def build(row: ManagedSessionRecord, now: int) -> Step:
            _visible(row, session_id, scope)
            step = state.accept(row, now, inputs, refuse_busy=refuse_busy)
            return self.turns.claim_with(row, step, now)

        record, stored, step = await self.log.write(session_id, build)
        await self._after(record, step)
        return [e for e in stored if e.kind in ev.SENDABLE]

    async def _after(self, record: ManagedSessionRecord, step: Step) -> None:
        # Nothing awaited before the call starts: no other kick here can come in between.
        if step.claimed:
            self.turns.start_claimed(record)
        elif step.kick:
            self.turns.kick(record.session_id)
        if step.needs_worker:
            await self.log.ensure_work_item(record.session_id, "new input for the managed session")

    async def cancel(self, session_id: str, scope: Scope) -> bool:
        """End the running turn as an interrupt does; False (nothing written) if the session
        is between turns."""
        row = await self.get(session_id, scope)
        if row.status == TERMINATED:
            raise SessionTerminated(session_id)
        if row.turn == TURN_IDLE:
            return False
        await self.send(session_id, scope, [Input(ev.USER_INTERRUPT, {})])
        return True

    # -- changing and ending --

    async def update(
        self,
        session_id: str,
        scope: Scope,
        title: str | None,
        metadata_patch: Mapping[str, str | None] | None,
    ) -> ManagedSessionRecord:
        await self.get(session_id, scope)

        def build(row: ManagedSessionRecord, now: int) -> Step:
            changes: dict[str, Any] = {"updated_at": now}
            if title is not None:
                changes["title"] = title
            if metadata_patch is not None:
                changes["metadata"] = merge_metadata(row.metadata, metadata_patch)
            return Step(changes, [])

        record, _, _ = await self.log.write(session_id, build)
        return record

    async def archive(self, session_id: str, scope: Scope) -> ManagedSessionRecord:
        await self.get(session_id, scope)

        def build(row: ManagedSessionRecord, now: int) -> Step:
            step = state.terminate(row, now)
            step.changes["archived_at"] = row.archived_at or now
            return step

        record, _, _ = await self.log.write(session_id, build)
        await self.log.cancel_queued_item(session_id, "session archived")
        return record

    async def delete(self, session_id: str, scope: Scope) -> None:
        await self.get(session_id, scope)
        await self.log.write(session_id, lambda row, now: state.terminate(row, now, deleted=True))
        await self.log.cancel_queued_item(session_id, "session deleted")

    async def terminate(self, session_id: str) -> bool:
        """An operator stop of a managed session's row ends the managed session too. False
        if the session is not a managed one."""
        if await self.store.get_managed_session(session_id) is None:
            return False
        await self.log.write(session_id, lambda row, now: state.terminate(row, now))
        return True

    # -- watching --

    async def position(self, session_id: str, event_id: str, name: str) -> int:
        """Where the session's event `event_id` is in its log (a cursor for `events` and
        `stream`); a 400 naming `name` if the session has no such event."""
        found = None
        if event_id.startswith("sevt_") and len(event_id) <= 64:
            found = await self.store.event_position(session_id, event_id, ev.WIRE_KINDS)
        if found is None:
            raise InvalidInput(name, f"{name}: {event_id} is not an event of session {session_id}")
        return found

    async def stream(
        self, session_id: str, scope: Scope, after_event: str | None = None, name: str = ""
    ) -> AsyncIterator[list[SessionEvent]]:
        """Every event committed after this call (or, resuming, after the event
        `after_event`, a 400 naming `name` if unknown), in batches as they come; an empty
        batch when nothing came for `keepalive_seconds`. Ends after a termination or deletion.
        The starting point is fixed before this returns, so a caller that opens the stream
        and then reads the history misses nothing in between."""
        await self.get(session_id, scope)
        if after_event is not None:
            cursor = await self.position(session_id, after_event, name)
        else:
            cursor = await self.store.last_event_id(session_id, ev.WIRE_KINDS)
        return self._follow(session_id, cursor)

    async def _follow(self, session_id: str, cursor: int) -> AsyncIterator[list[SessionEvent]]:
        """The session's watchers in this process share one reader (service/live_feed.py),
        woken by the topic every write to the log publishes."""

        async def read(after: int, limit: int) -> list[Item[SessionEvent]]:
            query = EventQuery(kinds=ev.WIRE_KINDS, after_id=after, limit=limit)
            return [(e.id or after, e) for e in await self.store.managed_events(session_id, query)]

        async def look(after: int, limit: int) -> tuple[list[Item[SessionEvent]], None]:
            return await read(after, limit), None  # a final event ends each watcher

        followed: AsyncGenerator[Sequence[Item[SessionEvent]] | Quiet | Ended[None]]
        followed = self.live.follow(
            ev.topic(session_id),
            cursor,
            look,
            read,
            quiet_seconds=self.keepalive_seconds,
            lifetime_seconds=math.inf,
        )
        async with contextlib.aclosing(followed):
            async for item in followed:
                if isinstance(item, Quiet):
                    yield []
                elif not isinstance(item, Ended):
                    found = [event for _, event in item]
                    yield found
                    if any(e.kind in ev.FINAL_KINDS for e in found):
                        return


def _visible(
    record: ManagedSessionRecord | None, session_id: str, scope: Scope
) -> ManagedSessionRecord:
    """The session, if it exists and the caller's key may see it."""
    if record is None or record.deleted_at is not None:
        raise ManagedSessionNotFound(session_id)
    if scope.environment is not None and record.environment_id != scope.environment:
        raise ManagedSessionNotFound(session_id)
    return record


def _first_text(inputs: list[Input]) -> str | None:
    for item in inputs:
        if item.kind == ev.USER_MESSAGE:
            texts = [b.get("text", "") for b in item.fields["content"] if b.get("type") == "text"]
            if texts:
                return "\n".join(texts)
    return None
