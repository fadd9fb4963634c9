"""Environments of the self-hosted environment work API. An environment is a project of kind
`environment`; its id is the queue name of the sessions (work items) queued in it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shopfloor.clock import Clock
from shopfloor.ids import new_environment_id
from shopfloor.service.errors import (
    EnvironmentArchived,
    EnvironmentNotFound,
    InvalidInput,
    WorkConflict,
)
from shopfloor.store import Store
from shopfloor.store.records import PROJECT_ENVIRONMENT, ProjectRecord
from shopfloor.store.tenancy_records import DEFAULT_ORG

METADATA_MAX_PAIRS = 16
UPDATE_ATTEMPTS = 5


def merge_metadata(
    current: Mapping[str, str], patch: Mapping[str, str | None], field: str = "metadata"
) -> dict[str, str]:
    """JSON merge-patch of a string map: a string sets the key, None deletes it."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > METADATA_MAX_PAIRS:
        raise InvalidInput(field, f"{field}: at most {METADATA_MAX_PAIRS} keys are allowed")
    return merged


@dataclass(frozen=True)
class NewEnvironment:
    name: str
    description: str | None = None
    config: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    scope: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[ProjectRecord]
    has_more: bool


class Environments:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def create(self, new: NewEnvironment, org_id: str = DEFAULT_ORG) -> ProjectRecord:
        now = self.clock.now_ms()
        project = ProjectRecord(
            id=new_environment_id(),
            kind=PROJECT_ENVIRONMENT,
            name=new.name,
            description=new.description,
            config=new.config or {"type": "self_hosted"},
            metadata=merge_metadata({}, new.metadata or {}),
            scope=new.scope,
            created_at=now,
            updated_at=now,
            org_id=org_id,
        )
        await self.store.insert_project(project)
        return project

    async def get(self, environment_id: str, org_id: str | None = None) -> ProjectRecord:
        """The environment, if it is one of `org_id`'s (None: any organisation's); to another
        organisation it does not exist."""
        project = await self.store.get_project(environment_id)
        if project is None or project.kind != PROJECT_ENVIRONMENT:
            raise EnvironmentNotFound(environment_id)
        if org_id is not None and project.org_id != org_id:
            raise EnvironmentNotFound(environment_id)
        return project

    async def list_page(
        self,
        *,
        include_archived: bool,
        after_id: str | None,
        limit: int,
        created_from: int | None = None,
        created_until: int | None = None,
        org_id: str | None = None,
    ) -> Page:
        """Environments in id order; `created_from`/`created_until` bound their creation time
        (epoch ms, both inclusive)."""
        found = await self.store.list_projects(
            PROJECT_ENVIRONMENT,
            include_archived=include_archived,
            after_id=after_id,
            limit=limit + 1,
            created_from=created_from,
            created_until=created_until,
            org_id=org_id,
        )
        return Page(found[:limit], len(found) > limit)

    async def update(
        self,
        environment_id: str,
        changes: Mapping[str, Any],
        metadata_patch: Mapping[str, str | None] | None,
        org_id: str | None = None,
    ) -> ProjectRecord:
        """Set the given fields (name, description, config, scope) and merge the metadata."""
        for _ in range(UPDATE_ATTEMPTS):
            project = await self.get(environment_id, org_id)
            if project.archived_at is not None:
                raise EnvironmentArchived(environment_id)
            values = dict(changes)
            if metadata_patch is not None:
                values["metadata"] = merge_metadata(project.metadata, metadata_patch)
            values["updated_at"] = max(self.clock.now_ms(), project.updated_at + 1)
            updated = await self.store.update_project(project.id, project.updated_at, values)
            if updated is not None:
                return updated
        raise WorkConflict(f"Environment {environment_id} is being changed concurrently")

    async def archive(self, environment_id: str, org_id: str | None = None) -> ProjectRecord:
        for _ in range(UPDATE_ATTEMPTS):
            project = await self.get(environment_id, org_id)
            if project.archived_at is not None:
                return project
            now = max(self.clock.now_ms(), project.updated_at + 1)
            updated = await self.store.update_project(
                project.id, project.updated_at, {"archived_at": now, "updated_at": now}
            )
            if updated is not None:
                return updated
        raise WorkConflict(f"Environment {environment_id} is being changed concurrently")

    async def delete(self, environment_id: str, org_id: str | None = None) -> None:
        """Delete an environment whose work is all finished (nothing is dropped silently)."""
        await self.get(environment_id, org_id)
        unfinished = await self.store.count_unfinished(environment_id)
        if unfinished:
            raise WorkConflict(
                f"Environment {environment_id} has {unfinished} unfinished work item(s); "
                "stop them first"
            )
        await self.store.delete_project(environment_id)

    async def accepting_queue(self, environment_id: str, org_id: str | None = None) -> str:
        """The queue for new sessions in this environment; refuses an archived one, and one
        of another organisation than `org_id` (None: any)."""
        return (await self.accepting(environment_id, org_id)).id

    async def accepting(self, environment_id: str, org_id: str | None = None) -> ProjectRecord:
        """The environment, if it takes new sessions (as accepting_queue)."""
        project = await self.get(environment_id, org_id)
        if project.archived_at is not None:
            raise EnvironmentArchived(environment_id)
        return project
