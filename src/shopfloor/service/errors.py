"""Domain errors. Protocol adapters map each to their own status code and body."""

from __future__ import annotations


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


class InvalidInput(DomainError):
    """Input the domain rejects, naming the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
