"""Agents: a model, a system prompt and tools, versioned. Every change makes a new version;
sessions keep a snapshot of the version they were made with.

An agent belongs to the organisation of the key that made it. A key limited to one environment
(an `rsp_live_` token) sees only the agents made with a key limited to that same environment;
an organisation-wide key (`rsk_live_`) all of its organisation's; the admin key every one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shopfloor.clock import Clock
from shopfloor.ids import uuid7_hex
from shopfloor.service.environments import merge_metadata
from shopfloor.service.errors import AgentNotFound, Conflict, InvalidInput
from shopfloor.service.managed.scope import Scope
from shopfloor.store import Store
from shopfloor.store.managed_records import AgentRecord, AgentVersionRecord
from shopfloor.store.tenancy_records import DEFAULT_ORG

ATTEMPTS = 5


@dataclass(frozen=True)
class Agent:
    head: AgentRecord
    version: AgentVersionRecord

    @property
    def definition(self) -> dict[str, Any]:
        return self.version.definition

    def snapshot(self) -> dict[str, Any]:
        """The agent as a session keeps it (the wire's session `agent` object, less its type)."""
        return {"id": self.head.id, "version": self.version.version, **self.definition}


@dataclass(frozen=True)
class AgentPage:
    items: list[Agent]
    has_more: bool


def visible(agent: AgentRecord, scope: Scope) -> bool:
    if scope.org_id is not None and agent.org_id != scope.org_id:
        return False
    return scope.environment is None or agent.project == scope.environment


class Agents:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def create(
        self, definition: dict[str, Any], scope: Scope, org_id: str = DEFAULT_ORG
    ) -> Agent:
        """An agent of `scope`'s organisation (`org_id` when the scope is every one's)."""
        now = self.clock.now_ms()
        head = AgentRecord(
            id="agent_" + uuid7_hex(),
            version=1,
            created_at=now,
            updated_at=now,
            project=scope.environment,
            org_id=scope.org_id or org_id,
        )
        first = AgentVersionRecord(head.id, 1, definition, now)
        await self.store.insert_agent(head, first)
        return Agent(head, first)

    async def head(self, agent_id: str, scope: Scope) -> AgentRecord:
        head = await self.store.get_agent(agent_id)
        if head is None or not visible(head, scope):
            raise AgentNotFound(agent_id)
        return head

    async def get(self, agent_id: str, scope: Scope, version: int | None = None) -> Agent:
        head = await self.head(agent_id, scope)
        wanted = head.version if version is None else version
        found = await self.store.get_agent_version(agent_id, wanted)
        if found is None:
            raise AgentNotFound(agent_id, version)
        return Agent(head, found)

    async def list_page(
        self,
        scope: Scope,
        *,
        include_archived: bool,
        after_id: str | None,
        limit: int,
        created_from: int | None = None,
        created_to: int | None = None,
    ) -> AgentPage:
        heads = await self.store.list_agents(
            project=scope.environment,
            org_id=scope.org_id,
            include_archived=include_archived,
            after_id=after_id,
            limit=limit + 1,
            created_from=created_from,
            created_to=created_to,
        )
        items = []
        for head in heads[:limit]:
            version = await self.store.get_agent_version(head.id, head.version)
            if version is not None:
                items.append(Agent(head, version))
        return AgentPage(items, len(heads) > limit)

    async def versions(
        self, agent_id: str, scope: Scope, *, after_version: int | None, limit: int
    ) -> tuple[AgentRecord, list[AgentVersionRecord], bool]:
        head = await self.head(agent_id, scope)
        found = await self.store.list_agent_versions(
            agent_id, after_version=after_version, limit=limit + 1
        )
        return head, found[:limit], len(found) > limit

    async def update(
        self,
        agent_id: str,
        scope: Scope,
        changes: Mapping[str, Any],
        metadata_patch: Mapping[str, str | None] | None,
        expected_version: int | None,
    ) -> Agent:
        """A new version with `changes` (whole fields) and the metadata patch applied. With
        `expected_version`, only if that is still the current version."""
        for _ in range(ATTEMPTS):
            current = await self.get(agent_id, scope)
            if current.head.archived_at is not None:
                raise InvalidInput("agent_id", f"Agent {agent_id} is archived; it takes no updates")
            version = current.head.version
            if expected_version is not None and expected_version != version:
                raise Conflict(
                    f"version: agent {agent_id} is at version {version}, not {expected_version}"
                )
            definition = {**current.definition, **changes}
            if metadata_patch is not None:
                definition["metadata"] = merge_metadata(
                    current.definition.get("metadata") or {}, metadata_patch
                )
            if definition == current.definition:
                return current  # nothing changed: no new version
            now = max(self.clock.now_ms(), current.head.updated_at + 1)
            head = await self.store.add_agent_version(agent_id, version, definition, now)
            if head is not None:
                return Agent(head, AgentVersionRecord(agent_id, head.version, definition, now))
            if expected_version is not None:
                raise Conflict(f"version: agent {agent_id} was updated concurrently")
        raise Conflict(f"Agent {agent_id} is being changed concurrently")

    async def archive(self, agent_id: str, scope: Scope) -> Agent:
        await self.head(agent_id, scope)
        head = await self.store.archive_agent(agent_id, self.clock.now_ms())
        if head is None:
            raise AgentNotFound(agent_id)
        version = await self.store.get_agent_version(agent_id, head.version)
        assert version is not None
        return Agent(head, version)
