"""Who is calling a Veryfront route. Project tokens: the operator's admin key, the static
worker key, or a key of an organisation (`rsp_live_` limits it to one project). Worker tokens
(`vfw_…`) are issued at registration and act only for their worker.

Projects, workers, runs and conversations belong to an organisation: a slug names a project
of the caller's organisation (the default one for the admin key and the static key), and a
UUID names any project, which must then be the caller's organisation's. Another
organisation's workers, runs and conversations answer 404; its projects 403, as a project
the key may not use. The admin key reaches every organisation; the static worker key the
default organisation."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from shopfloor.api.envelope import ApiError, bearer
from shopfloor.api.state import services
from shopfloor.service.audit import Who
from shopfloor.service.errors import ConversationNotFound, RunNotFound, WorkerNotFound
from shopfloor.service.runs import AgentWorker, ProjectRef, RunService, RunState, project_ref
from shopfloor.store.run_records import ConversationRecord
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
    org_id: str | None = None  # the caller's organisation; None: every one (the admin key)

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

    @property
    def slug_org(self) -> str:
        """The organisation whose projects the caller's slugs name."""
        return self.org_id or DEFAULT_ORG

    def sees(self, org_id: str) -> bool:
        return self.org_id is None or self.org_id == org_id

    def require_project(self, project_id: str) -> None:
        """The key's own projects (its organisation was checked apart)."""
        if self.all_projects:
            return
        if self.worker is not None and self.worker.details.project_id == project_id:
            return
        if any(project_ref(p, self.slug_org).id == project_id for p in self.projects):
            return
        raise ApiError(403, WRONG_PROJECT)

    def require_worker(self, agent: AgentWorker) -> None:
        if self.worker is not None:
            if self.worker.worker.id != agent.worker.id:
                raise ApiError(403, WRONG_WORKER)
            return
        if not self.sees(agent.worker.org_id):
            raise WorkerNotFound(agent.worker.id)
        self.require_project(agent.details.project_id)

    def require_run(self, state: RunState) -> None:
        if not self.sees(state.session.org_id):
            raise RunNotFound(state.run.run_id)
        self.require_project(state.run.project_id)

    def require_conversation(self, conversation: ConversationRecord) -> None:
        if not self.sees(conversation.org_id):
            raise ConversationNotFound(conversation.id)
        if conversation.project_id is not None:
            self.require_project(conversation.project_id)
        elif not self.all_projects:
            raise ApiError(403, WRONG_PROJECT)


async def project_org(request: Request, project: ProjectRef, slug_org: str) -> str:
    """The organisation of a project named by the caller: a slug's is `slug_org`."""
    if project.name != project.id:
        return slug_org
    return await run_service(request).project_org(project.id)


async def require_project(
    request: Request, caller: VfCaller, project: ProjectRef, slug_org: str | None = None
) -> str:
    """The organisation of the project the caller named, if the caller may use it."""
    org = await project_org(request, project, slug_org or caller.slug_org)
    if not caller.sees(org):
        raise ApiError(403, WRONG_PROJECT)
    caller.require_project(project.id)
    return org


def named_project(caller: VfCaller, reference: str) -> ProjectRef:
    return project_ref(reference, caller.slug_org)


async def vf_caller(request: Request) -> VfCaller:
    token = bearer(request) or request.headers.get("x-api-key", "").strip() or None
    if token is None:
        raise ApiError(401, UNAUTHORIZED)
    creds = services(request).credentials
    if creds.is_admin(token):
        return VfCaller(all_projects=True, static_key="admin")
    if creds.is_static_worker_key(token):
        return VfCaller(all_projects=True, static_key="worker-key", org_id=DEFAULT_ORG)
    record = await creds.registration_token(token)
    if record is not None:
        return VfCaller(
            all_projects=record.projects is None,
            projects=frozenset(record.projects or ()),
            registration=record,
            org_id=record.org_id,
        )
    agent = await run_service(request).worker_for_token(token)
    if agent is not None and not creds.is_revoked(agent.worker.registration_id):
        return VfCaller(worker=agent, org_id=agent.worker.org_id)
    raise ApiError(401, UNAUTHORIZED)
