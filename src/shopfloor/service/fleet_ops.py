"""The fleet operations an agent or a script may call (rensei-platform.md §7.3, the AF MCP
server's tools): queue a task, read one, list the fleet, total its cost, forward a prompt to a
running task, stop one. Each call is bounded to a `FleetScope` (an organisation, and the
projects the caller reaches); a task outside it does not exist for the caller."""

from __future__ import annotations

from dataclasses import dataclass

from shopfloor.service.dispatch import Dispatcher, NewSession, af_queue
from shopfloor.service.errors import Conflict, InvalidInput, SessionNotFound
from shopfloor.store.records import (
    ALL_STATUSES,
    CLAIMED,
    PENDING,
    RUNNING,
    InboxMessage,
    SessionFilter,
    SessionRecord,
)

MAX_LIST = 200
DEFAULT_LIST = 20
# The cost report reads at most this many sessions (newest first), page by page.
COST_REPORT_SESSIONS = 10_000
_PAGE = 500
FORWARDABLE = (RUNNING, CLAIMED)
STOPPABLE = (PENDING, CLAIMED, RUNNING)


@dataclass(frozen=True)
class FleetScope:
    org_id: str | None  # None: every organisation (the operator's admin key)
    projects: frozenset[str] | None  # None: every project of the organisation

    def reaches(self, session: SessionRecord) -> bool:
        if self.org_id is not None and session.org_id != self.org_id:
            return False
        return self.projects is None or session.project in self.projects


@dataclass(frozen=True)
class TaskRequest:
    issue_id: str
    description: str | None = None
    work_type: str | None = None
    priority: int = 3
    project: str | None = None


@dataclass(frozen=True)
class CostReport:
    total_sessions: int
    with_cost: int
    total_cost_usd: float
    input_tokens: int
    output_tokens: int


class FleetOps:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def submit(self, scope: FleetScope, task: TaskRequest, org_id: str) -> SessionRecord:
        if not 1 <= task.priority <= 5:
            raise InvalidInput("priority", "priority: an integer from 1 to 5")
        if scope.projects is not None and task.project not in scope.projects:
            raise InvalidInput("projectName", "projectName: one of the caller's projects")
        return await self.dispatcher.create_session(
            NewSession(
                queue=af_queue(org_id),
                issue_id=task.issue_id,
                issue_identifier=task.issue_id,
                prompt=task.description,
                description=task.description,
                work_type=task.work_type,
                priority=task.priority,
                project=task.project,
                org_id=org_id,
            )
        )

    async def get(self, scope: FleetScope, task_id: str) -> SessionRecord:
        session = await self.dispatcher.store.get_session(task_id)
        if session is None or not scope.reaches(session):
            raise SessionNotFound(task_id)
        return session

    async def list_tasks(
        self, scope: FleetScope, statuses: list[str] | None, limit: int = DEFAULT_LIST
    ) -> list[SessionRecord]:
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput("limit", f"limit: from 1 to {MAX_LIST}")
        unknown = [s for s in statuses or [] if s not in ALL_STATUSES]
        if unknown:
            raise InvalidInput("status", "status: each one of " + ", ".join(ALL_STATUSES))
        found: list[SessionRecord] = []
        wanted: list[str | None] = list(statuses) if statuses else [None]
        for status in wanted:
            found += await self.dispatcher.list_sessions(self._filter(scope, status, limit))
        found.sort(key=lambda s: s.id, reverse=True)
        return found[:limit]

    async def cost_report(self, scope: FleetScope, task_id: str | None) -> CostReport:
        sessions = [await self.get(scope, task_id)] if task_id else await self._all(scope)
        costed = [s for s in sessions if s.total_cost_usd is not None]
        return CostReport(
            total_sessions=len(sessions),
            with_cost=len(costed),
            total_cost_usd=round(sum(s.total_cost_usd or 0.0 for s in costed), 6),
            input_tokens=sum(s.input_tokens or 0 for s in sessions),
            output_tokens=sum(s.output_tokens or 0 for s in sessions),
        )

    async def forward(
        self, scope: FleetScope, task_id: str, message: str, sender: str
    ) -> tuple[SessionRecord, InboxMessage]:
        session = await self.get(scope, task_id)
        if session.status not in FORWARDABLE:
            raise Conflict(f"Task is {session.status}; only running or claimed tasks take prompts")
        sent = await self.dispatcher.channel.send(session.id, "directive", message, user_id=sender)
        return session, sent

    async def stop(self, scope: FleetScope, task_id: str, sender: str) -> SessionRecord:
        session = await self.get(scope, task_id)
        if session.status not in STOPPABLE:
            raise Conflict(f"Task is {session.status}; only pending, claimed or running stop")
        return await self.dispatcher.channel.stop(session.id, "stopped by agent", user_id=sender)

    async def _all(self, scope: FleetScope) -> list[SessionRecord]:
        found: list[SessionRecord] = []
        before: str | None = None
        while len(found) < COST_REPORT_SESSIONS:
            page = await self.dispatcher.list_sessions(self._filter(scope, None, _PAGE, before))
            found += page
            if len(page) < _PAGE:
                break
            before = page[-1].id
        return found[:COST_REPORT_SESSIONS]

    @staticmethod
    def _filter(
        scope: FleetScope, status: str | None, limit: int, before: str | None = None
    ) -> SessionFilter:
        return SessionFilter(
            status=status,
            before_id=before,
            limit=limit,
            org_id=scope.org_id,
            projects=scope.projects,
        )
