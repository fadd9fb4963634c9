"""Daemon mutations (rensei-platform.md §1.9): a change an operator queues for one daemon host
(add or remove a project from its allowlist, a deleted pool, a model-access policy), delivered
in that host's next heartbeat reply and stamped delivered there, which closes the window in
which it may be cancelled (undo after delivery is the inverse op)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from shopfloor.clock import Clock
from shopfloor.ids import uuid7_hex
from shopfloor.service.actors import Principal
from shopfloor.service.errors import Conflict, DomainError, WorkerNotFound
from shopfloor.store import Store
from shopfloor.store.records import WorkerRecord
from shopfloor.store.routing_records import MUTATION_PENDING, Mutation

MutationOp = Literal[
    "project.add", "project.remove", "pool.deleted", "modelAccess.set", "modelAccess.clear"
]
OPS = get_args(MutationOp)


class MutationNotFound(DomainError):
    def __init__(self, mutation_id: str) -> None:
        super().__init__(f"Mutation {mutation_id} not found")


class AlreadyDelivered(Conflict):
    def __init__(self) -> None:
        super().__init__("already_delivered")


class DaemonMutations:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

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
        return await self.store.deliver_mutations(worker_id, self.clock.now_ms())
