"""What the queue engine has done, told as it happens: the sessions handed to workers (with
how long they had waited), the recoveries (sessions taken back from a worker and queued again)
and the workers declared dead. Kept here as plain counts, and
passed to whoever watches (the /metrics adapter keeps them as Prometheus counters, shared
between server processes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shopfloor.store.records import SessionRecord

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
PROTOCOLS = (AGENTFACTORY, ENVIRONMENTS, VERYFRONT)
# Why a worker ended.
WORKER_DEREGISTERED = "deregistered"
WORKER_DEAD = "dead"  # silent for the worker TTL
WORKER_REVOKED = "registration_revoked"
WORKER_END_CAUSES = (WORKER_DEREGISTERED, WORKER_DEAD, WORKER_REVOKED)
REQUEUE_CAUSES = (
    BY_LEASE_EXPIRED,
    BY_WORKER_DEAD,
    BY_WORKER_DEREGISTERED,
    BY_REGISTRATION_REVOKED,
    BY_HEARTBEAT_UNDERCOUNT,
    BY_NACKED,
)


def protocol_of(queue: str) -> str:
    """Which protocol's workers serve a queue: `agentfactory` (`agentfactory`,
    `agentfactory:<org>`), `veryfront` (`vf:<project>:<kind>:<worker key>`), or `environments`
    (an environment's id; managed sessions run there too)."""
    if queue == AGENTFACTORY or queue.startswith(AGENTFACTORY + ":"):
        return AGENTFACTORY
    if queue.startswith("vf:"):
        return VERYFRONT
    return ENVIRONMENTS


@dataclass
class EngineCounters:
    requeued: Counter[str] = field(default_factory=Counter)  # by cause, in this process
    workers_declared_dead: int = 0
    on_requeue: list[Callable[[str], None]] = field(default_factory=list)
    on_worker_dead: list[Callable[[], None]] = field(default_factory=list)
    # (protocol, how long each handed-out session had waited since it was queued, in ms)
    on_claim: list[Callable[[str, list[int]], None]] = field(default_factory=list)
    # the handed-out sessions themselves, and when (the console's queue history)
    on_claimed: list[Callable[[Sequence[SessionRecord], int], None]] = field(default_factory=list)
    on_end: list[Callable[[str, str], None]] = field(default_factory=list)  # (protocol, status)
    on_worker_end: list[Callable[[str], None]] = field(default_factory=list)  # (cause)

    def count_end(self, queue: str, status: str) -> None:
        """A session ended (completed, failed, stopped), however it ended."""
        if self.on_end:
            protocol = protocol_of(queue)
            for tell in self.on_end:
                tell(protocol, status)

    def count_worker_end(self, cause: str) -> None:
        for tell in self.on_worker_end:
            tell(cause)

    def count_requeue(self, cause: str) -> None:
        self.requeued[cause] += 1
        for tell in self.on_requeue:
            tell(cause)

    def count_worker_dead(self) -> None:
        self.workers_declared_dead += 1
        for tell in self.on_worker_dead:
            tell()

    def count_claims(self, protocol: str, sessions: Sequence[SessionRecord], now: int) -> None:
        """Sessions handed to a worker: claimed, or (environment work) delivered."""
        if sessions and self.on_claim:
            waits = [max(0, now - s.queued_at) for s in sessions]
            for tell in self.on_claim:
                tell(protocol, waits)
        for keep in self.on_claimed:
            keep(sessions, now)
