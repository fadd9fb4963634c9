"""What every route reaches through `request.app.state.services`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from shopfloor.clock import Clock
from shopfloor.config import Settings
from shopfloor.service.auth import Credentials
from shopfloor.service.dispatch import Dispatcher
from shopfloor.service.managed.sessions import ManagedSessions
from shopfloor.service.managed.turns import TurnRunner
from shopfloor.service.orgs import Orgs
from shopfloor.service.vault import Vault
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
    vault: Vault


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
