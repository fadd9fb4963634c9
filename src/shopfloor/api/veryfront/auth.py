"""Who is calling a Veryfront route. Project tokens: the operator's admin key, the static
worker key, or a registration token (`rsp_live_` limits it to one project). Worker tokens
(`vfw_…`) are issued at registration and act only for their worker."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.state import services
from shopfloor.service.audit import Who
from shopfloor.service.runs import AgentWorker, RunService, project_ref
from shopfloor.store.tenancy_records import DEFAULT_ORG, ApiKeyRecord

UNAUTHORIZED = "Invalid or missing API key"
WRONG_PROJECT = "Token is not valid for this project"
WRONG_WORKER = "Token is not valid for this worker"


def run_service(request: Request) -> RunService:
    return RunService(services(request).dispatcher)


@dataclass(frozen=True)
class VfCaller:
    all_projects: bool = False
    projects: frozenset[str] = frozenset()  # the projects of a project-scoped key
    worker: AgentWorker | None = None  # set for a worker token
    registration: ApiKeyRecord | None = None  # set for a registration token
    static_key: str | None = None  # "admin" or "worker-key" for the server's own keys

    @property
    def project(self) -> str | None:
        """The one project of a key limited to exactly one: what a call naming none uses."""
        return next(iter(self.projects)) if len(self.projects) == 1 else None

    @property
    def actor(self) -> Who:
        """Who the audit log names for what this caller does."""
        if self.registration is not None:
            return Who(self.registration.id, "api_key")
        if self.worker is not None:
            return Who(self.worker.worker.id, "worker")
        if self.static_key == "admin":
            return Who("admin", "operator")
        return Who("worker-key", "worker")

    @property
    def worker_id(self) -> str | None:
        return None if self.worker is None else self.worker.worker.id

    def require_project(self, project_id: str) -> None:
        if self.all_projects:
            return
        if self.worker is not None and self.worker.details.project_id == project_id:
            return
        if any(project_ref(p).id == project_id for p in self.projects):
            return
        raise ApiError(403, WRONG_PROJECT)

    def require_worker(self, agent: AgentWorker) -> None:
        if self.worker is not None:
            if self.worker.worker.id != agent.worker.id:
                raise ApiError(403, WRONG_WORKER)
            return
        self.require_project(agent.details.project_id)


async def vf_caller(request: Request) -> VfCaller:
    token = bearer(request) or request.headers.get("x-api-key", "").strip() or None
    if token is None:
        raise ApiError(401, UNAUTHORIZED)
    creds = services(request).credentials
    if creds.is_admin(token):
        return VfCaller(all_projects=True, static_key="admin")
    if creds.is_static_worker_key(token):
        return VfCaller(all_projects=True, static_key="worker-key")
    record = await creds.registration_token(token)
    if record is not None:
        if record.org_id != DEFAULT_ORG:
            # Veryfront projects are not yet kept apart by organisation: only the default
            # organisation's keys reach them.
            raise ApiError(403, "This key's organisation may not use the Veryfront routes yet")
        return VfCaller(
            all_projects=record.projects is None,
            projects=frozenset(record.projects or ()),
            registration=record,
        )
    agent = await run_service(request).worker_for_token(token)
    if agent is not None and not creds.is_revoked(agent.worker.registration_id):
        return VfCaller(worker=agent)
    raise ApiError(401, UNAUTHORIZED)
