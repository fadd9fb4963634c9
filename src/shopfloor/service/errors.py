"""Domain errors. Protocol adapters map each to their own status code and body."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WorkerNotFound(DomainError):
    def __init__(self, worker_id: str) -> None:
        super().__init__("Worker not found")
        self.worker_id = worker_id


class SessionNotFound(DomainError):
    def __init__(self, session_id: str) -> None:
        super().__init__("Session not found")
        self.session_id = session_id


class NotOwner(DomainError):
    """The caller does not hold the session's lease (or no longer does)."""

    def __init__(self, session_id: str) -> None:
        super().__init__("Session is owned by another worker")
        self.session_id = session_id


class InvalidTransition(DomainError):
    def __init__(self, current: str, requested: str) -> None:
        super().__init__(f"Session is already {current}; cannot move to {requested}")
        self.current = current
        self.requested = requested


class Conflict(DomainError):
    pass


class NotPermitted(DomainError):
    """The credential may not do this (its scopes or projects do not reach)."""


class InvalidInput(DomainError):
    """Input the domain rejects, naming the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ResourceNotFound(DomainError):
    """A repository, credential source or batch item that is not there (or not the caller's
    organisation's, which it is not told apart from)."""

    def __init__(self, what: str, resource_id: str) -> None:
        super().__init__(f"{what} {resource_id} not found")
        self.resource_id = resource_id


class OrgNotFound(DomainError):
    def __init__(self, org: str) -> None:
        super().__init__(f"Organisation {org} not found")
        self.org = org


class EnvironmentNotFound(DomainError):
    def __init__(self, environment_id: str) -> None:
        super().__init__(f"Environment {environment_id} not found")
        self.environment_id = environment_id


class EnvironmentArchived(DomainError):
    def __init__(self, environment_id: str) -> None:
        super().__init__(f"Environment {environment_id} is archived")
        self.environment_id = environment_id


class WorkNotFound(DomainError):
    def __init__(self, work_id: str) -> None:
        super().__init__(f"Work item {work_id} not found")
        self.work_id = work_id


class WorkConflict(DomainError):
    """The work item's state does not allow the request; retrying will not help."""


@dataclass(frozen=True)
class LeaseState:
    last_heartbeat: int | None
    state: str
    ttl_seconds: int


class HeartbeatPreconditionFailed(DomainError):
    """`expected_last_heartbeat` does not match: another worker holds the lease."""

    def __init__(self, message: str, current: LeaseState) -> None:
        super().__init__(message)
        self.current = current


class RunNotFound(DomainError):
    def __init__(self, run_id: str) -> None:
        super().__init__("Run not found")
        self.run_id = run_id


class LeaseNotHeld(DomainError):
    """A write to a run whose lease the writer does not hold (expired, requeued, re-claimed)."""

    def __init__(self, run_id: str) -> None:
        super().__init__("Run lease is not held; claim the run again")
        self.run_id = run_id


class RunTerminal(DomainError):
    """An append to a run that has already completed, failed or been cancelled."""

    def __init__(self, run_id: str) -> None:
        super().__init__("Run is already finished")
        self.run_id = run_id


class CursorMismatch(DomainError):
    """An append whose expected previous cursor is not the run's current one."""

    def __init__(self, which: str, expected: int, current: int) -> None:
        super().__init__(f"{which} is {current}, not {expected}")
        self.which = which
        self.expected = expected
        self.current = current


class RunWaitingForTool(DomainError):
    """An append to a run that waits for a tool's result (an open input request)."""

    def __init__(self, run_id: str) -> None:
        super().__init__("Run is waiting for a tool result")
        self.run_id = run_id


class ConversationNotFound(DomainError):
    def __init__(self, conversation_id: str) -> None:
        super().__init__("Conversation not found")
        self.conversation_id = conversation_id


class InputRequestNotFound(DomainError):
    def __init__(self, request_id: str) -> None:
        super().__init__("Input request not found")
        self.request_id = request_id


class AgentNotFound(DomainError):
    def __init__(self, agent_id: str, version: int | None = None) -> None:
        which = agent_id if version is None else f"{agent_id} version {version}"
        super().__init__(f"Agent {which} not found")
        self.agent_id = agent_id


class ManagedSessionNotFound(DomainError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"Session {session_id} not found")
        self.session_id = session_id


class SessionTerminated(DomainError):
    """Input to a managed session that has ended for good (archived, deleted, stopped)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"Session {session_id} is terminated; it takes no more input")
        self.session_id = session_id


class SessionBusy(Conflict):
    """A user message to a managed session whose turn is running, where the protocol refuses
    it instead of answering it in the same turn (Qoder's; its agent SDK retries on exactly
    this message)."""

    MESSAGE = (
        "Session is currently processing a turn. Cancel the current turn or wait for completion."
    )

    def __init__(self, session_id: str) -> None:
        super().__init__(self.MESSAGE)
        self.session_id = session_id
