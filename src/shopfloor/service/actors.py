"""Who makes a worker-side call, as the domain sees it: the bounds of the credential behind
the call, whatever the protocol it came in by."""

from __future__ import annotations

from dataclasses import dataclass

from shopfloor.store.tenancy_records import DEFAULT_ORG


@dataclass(frozen=True)
class Actor:
    """A worker-side credential. `worker_id`: the one worker it acts for (a runtime JWT's
    subject); None for one that may act for any worker of its organisation (the static worker
    key). `org_id`: its organisation. `projects`: the projects it may touch (a project-scoped
    registration token's); None for all of its organisation's. `registration_id`: the
    registration token it was minted from, if any."""

    worker_id: str | None = None
    org_id: str = DEFAULT_ORG
    projects: frozenset[str] | None = None
    registration_id: str | None = None

    def may_act_as(self, worker_id: str | None) -> bool:
        return self.worker_id is None or self.worker_id == worker_id

    def may_touch(self, org_id: str, project: str | None) -> bool:
        if org_id != self.org_id:
            return False
        return self.projects is None or project in self.projects


# The static worker key: the shared credential of the default organisation's fleet.
ANYONE = Actor()


@dataclass(frozen=True)
class Principal:
    """Who makes a call of the operator, platform or public APIs (a person, a script, an
    integration): the one organisation it acts in (None: the operator's admin key, every
    organisation), the projects it may touch (None: all of its organisation's), and what it
    may do (`scopes`; `*` is everything)."""

    org_id: str | None
    projects: frozenset[str] | None
    scopes: frozenset[str]
    identity: str  # "admin", a key id or an M2M client id: who to name as the sender

    @property
    def is_operator(self) -> bool:
        return self.org_id is None

    def may(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes

    def may_touch(self, org_id: str, project: str | None) -> bool:
        if self.org_id is not None and self.org_id != org_id:
            return False
        return self.projects is None or project in self.projects


OPERATOR = Principal(org_id=None, projects=None, scopes=frozenset({"*"}), identity="admin")
