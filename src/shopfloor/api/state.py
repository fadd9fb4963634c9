"""What every route reaches through `request.app.state.services`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from shopfloor.clock import Clock
from shopfloor.config import Settings
from shopfloor.service.a2a_registry import A2aRegistry
from shopfloor.service.audit import AuditLog
from shopfloor.service.auth import Credentials
from shopfloor.service.batch import BatchWork
from shopfloor.service.console_logins import ConsoleLogins
from shopfloor.service.daemon_mutations import DaemonMutations, PendingHosts
from shopfloor.service.dispatch import Dispatcher
from shopfloor.service.fleet import Fleet
from shopfloor.service.git_credentials import GitCredentials
from shopfloor.service.managed.sessions import ManagedSessions
from shopfloor.service.managed.turns import TurnRunner
from shopfloor.service.memory import Memory
from shopfloor.service.orgs import Orgs
from shopfloor.service.secret_box import SecretBox
from shopfloor.service.vault import Vault
from shopfloor.service.webhooks import Webhooks
from shopfloor.service.work import WorkQueue


@dataclass
class Services:
    settings: Settings
    clock: Clock
    dispatcher: Dispatcher
    credentials: Credentials
    work: WorkQueue  # the environment work API's queues (one per process: it keeps state)
    managed: ManagedSessions
    turns: TurnRunner  # this process's runner of managed sessions' model calls
    orgs: Orgs
    secrets: SecretBox  # seals stored secrets under keys outside the database
    git: GitCredentials
    batch: BatchWork
    audit: AuditLog
    webhooks: Webhooks
    memory: Memory  # agents' memory behind the MCP memory tools
    a2a: A2aRegistry  # remote A2A agents and dispatches to them

    @property
    def fleet(self) -> Fleet:
        return Fleet(self.dispatcher)

    @property
    def mutations(self) -> DaemonMutations:
        return DaemonMutations(
            self.dispatcher.store, self.clock, self.pending_mutations, self.dispatcher.notifier
        )

    @property
    def console_logins(self) -> ConsoleLogins:
        return ConsoleLogins(self.credentials, self.dispatcher.store, self.clock)

    vault: Vault
    pending_mutations: PendingHosts  # hosts with daemon mutations to deliver, as last heard


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
