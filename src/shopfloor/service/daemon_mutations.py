"""Daemon mutations (rensei-platform.md §1.9): a change an operator queues for one daemon host
(add or remove a project from its allowlist, a deleted pool, a model-access policy), delivered
in that host's next heartbeat reply and stamped delivered there, which closes the window in
which it may be cancelled (undo after delivery is the inverse op).

The daemon v1 heartbeat asks the database every time; the AgentFactory heartbeat, a worker's
hot path, asks only for a host this process knows to have pending mutations (PendingHosts).
Either way the delivery is one statement, so two heartbeats at once never both deliver one."""

from __future__ import annotations

import asyncio
from typing import Any, Literal, get_args

from shopfloor.clock import Clock
from shopfloor.ids import uuid7_hex
from shopfloor.service.actors import Principal
from shopfloor.service.errors import Conflict, DomainError, WorkerNotFound
from shopfloor.service.notifier import Notifier
from shopfloor.store import Store
from shopfloor.store.records import WorkerRecord
from shopfloor.store.routing_records import MUTATION_PENDING, Mutation

MutationOp = Literal[
    "project.add", "project.remove", "pool.deleted", "modelAccess.set", "modelAccess.clear"
]
OPS = get_args(MutationOp)
PENDING_TOPIC = "daemon-mutations"  # signalled by every process that enqueues one


class PendingHosts:
    """The hosts with pending mutations, as this process last heard: the set is read from the
    database at the start, and again whenever any process enqueues a mutation (or signals may
    have been missed); a host is dropped from it once a delivery to it found the set
    unchanged meanwhile. A stale entry costs one delivery statement that finds nothing."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._hosts: set[str] = set()
        self._generation = 0
        self._reloads: set[asyncio.Task[None]] = set()

    def watch(self, notifier: Notifier) -> None:
        notifier.listen(PENDING_TOPIC, self._on_signal)

    def _on_signal(self) -> None:
        task = asyncio.ensure_future(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> None:
        hosts = await self._store.hosts_with_pending_mutations()
        self._hosts = hosts
        self._generation += 1

    def add(self, worker_id: str) -> None:
        self._hosts.add(worker_id)
        self._generation += 1

    def has(self, worker_id: str) -> bool:
        return worker_id in self._hosts

    @property
    def generation(self) -> int:
        return self._generation

    def delivered(self, worker_id: str, generation: int) -> None:
        """A delivery to the host that began at `generation` took everything pending."""
        if self._generation == generation:
            self._hosts.discard(worker_id)


class MutationNotFound(DomainError):
    def __init__(self, mutation_id: str) -> None:
        super().__init__(f"Mutation {mutation_id} not found")


class AlreadyDelivered(Conflict):
    def __init__(self) -> None:
        super().__init__("already_delivered")


class DaemonMutations:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        pending: PendingHosts | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.pending = pending
        self.notifier = notifier

    async def host(self, who: Principal, worker_id: str) -> WorkerRecord:
        """The daemon host, if it belongs to the caller's organisation."""
        worker = await self.store.get_worker(worker_id)
        if worker is None or (who.org_id is not None and worker.org_id != who.org_id):
            raise WorkerNotFound(worker_id)
        return worker

    async def enqueue(
        self, who: Principal, worker_id: str, op: str, params: dict[str, Any]
    ) -> Mutation:
        worker = await self.host(who, worker_id)
        mutation = Mutation(
            id=f"mut_{uuid7_hex()}",
            org_id=worker.org_id,
            worker_id=worker.id,
            op=op,
            status=MUTATION_PENDING,
            requested_by=who.identity,
            created_at=self.clock.now_ms(),
            params=params,
        )
        await self.store.insert_mutation(mutation)
        if self.pending is not None:
            self.pending.add(worker.id)
        if self.notifier is not None:
            await self.notifier.publish(PENDING_TOPIC)
        return mutation

    async def of_host(self, who: Principal, worker_id: str, limit: int) -> list[Mutation]:
        await self.host(who, worker_id)
        return await self.store.list_mutations(worker_id, limit)

    async def cancel(self, who: Principal, mutation_id: str) -> None:
        found = await self.store.get_mutation(mutation_id)
        if found is None or (who.org_id is not None and found.org_id != who.org_id):
            raise MutationNotFound(mutation_id)
        if not await self.store.cancel_mutation(mutation_id, self.clock.now_ms()):
            latest = await self.store.get_mutation(mutation_id)
            if latest is None or latest.status != "cancelled":
                raise AlreadyDelivered()

    async def deliver(self, worker_id: str) -> list[Mutation]:
        """Stamp the host's pending mutations delivered and return them."""
        generation = None if self.pending is None else self.pending.generation
        delivered = await self.store.deliver_mutations(worker_id, self.clock.now_ms())
        if self.pending is not None and generation is not None:
            self.pending.delivered(worker_id, generation)
        return delivered

    async def deliver_if_pending(self, worker_id: str) -> list[Mutation]:
        """As deliver, without a database statement for a host with nothing pending."""
        if self.pending is not None and not self.pending.has(worker_id):
            return []
        return await self.deliver(worker_id)
