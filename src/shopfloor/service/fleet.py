"""What an operator looks at: totals of sessions and workers, and the workers themselves, each
kept to what the caller may see (its organisation, its projects)."""

from __future__ import annotations

from dataclasses import replace

from shopfloor.service.actors import Principal
from shopfloor.service.dispatch import Dispatcher
from shopfloor.service.queue_history import QueueSeries
from shopfloor.store.records import WorkerRecord
from shopfloor.store.stats_records import SessionCount, StatsScope, WorkerCount, WorkerPage


class Fleet:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._store = dispatcher.store

    async def session_counts(self, who: Principal) -> list[SessionCount]:
        return await self._store.session_counts(StatsScope(who.org_id, who.projects))

    async def worker_counts(self, who: Principal) -> list[WorkerCount]:
        return await self._store.worker_counts(who.org_id)

    async def workers(self, who: Principal, status: str | None) -> list[WorkerRecord]:
        """The workers of the caller's organisation (every one for the admin key), newest
        first; as the operator API's worker list shows them."""
        return await self._store.list_workers(status, who.org_id)

    async def queue_history(self, who: Principal) -> list[QueueSeries]:
        """Each visible queue's claims and waits per minute, over the last minutes."""
        return await self._dispatcher.queue_history.recent(who)

    async def workers_page(self, who: Principal, page: WorkerPage) -> list[WorkerRecord]:
        """One page of the caller's organisation's workers (every one's for the admin key),
        newest first."""
        return await self._store.worker_page(replace(page, org_id=who.org_id))

    def held_polls(self) -> int:
        """Long polls this process holds open, waiting for work."""
        return self._dispatcher.notifier.waiting_total()
