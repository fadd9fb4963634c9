"""What the queue engine has done, told as it happens: the sessions handed to workers (with
how long they had waited), the recoveries (sessions taken back from a worker and queued again)
and the workers declared dead. Kept here as plain counts, and
passed to whoever watches (the /metrics adapter keeps them as Prometheus counters, shared
between server processes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

# Why a live session went back to the queue.
BY_LEASE_EXPIRED = "lease_expired"  # a claim not reported running, a work lease: ran out
BY_WORKER_DEAD = "worker_dead"  # its worker fell silent for the worker TTL
BY_WORKER_DEREGISTERED = "worker_deregistered"
BY_REGISTRATION_REVOKED = "registration_revoked"  # its worker's registration token was revoked
BY_HEARTBEAT_UNDERCOUNT = "heartbeat_undercount"  # the worker's heartbeats stopped counting it
BY_NACKED = "nacked"  # its worker handed it back
# Who was handed a session.
AGENTFACTORY = "agentfactory"
ENVIRONMENTS = "environments"
VERYFRONT = "veryfront"
REQUEUE_CAUSES = (
    BY_LEASE_EXPIRED,
    BY_WORKER_DEAD,
    BY_WORKER_DEREGISTERED,
    BY_REGISTRATION_REVOKED,
    BY_HEARTBEAT_UNDERCOUNT,
    BY_NACKED,
)


@dataclass
class EngineCounters:
    requeued: Counter[str] = field(default_factory=Counter)  # by cause, in this process
    workers_declared_dead: int = 0
    on_requeue: list[Callable[[str], None]] = field(default_factory=list)
    on_worker_dead: list[Callable[[], None]] = field(default_factory=list)
    # (protocol, how long each handed-out session had waited since it was queued, in ms)
    on_claim: list[Callable[[str, list[int]], None]] = field(default_factory=list)

    def count_requeue(self, cause: str) -> None:
        self.requeued[cause] += 1
        for tell in self.on_requeue:
            tell(cause)

    def count_worker_dead(self) -> None:
        self.workers_declared_dead += 1
        for tell in self.on_worker_dead:
            tell()

    def count_claims(self, protocol: str, queued_at: list[int], now: int) -> None:
        """Sessions handed to a worker: claimed, or (environment work) delivered."""
        if queued_at and self.on_claim:
            waits = [max(0, now - at) for at in queued_at]
            for tell in self.on_claim:
                tell(protocol, waits)
