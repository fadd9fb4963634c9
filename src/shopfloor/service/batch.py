"""Batch work: background items (`{kind, capability, payload}`) that workers registered with
the item's capability receive in `batchWork` on their poll.

An item is leased like a session: to one worker at a time, for `lease_seconds`, with an epoch
that grows with every lease. A worker reports the item's end while it holds that lease; an
item whose lease runs out is leased again on a capable worker's next poll, and the late
holder's report is refused. `code-survival-scan` is the first kind (payload: the repository
and the sessions whose code to look for; result: see README)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shopfloor.clock import Clock
from shopfloor.ids import uuid7_hex
from shopfloor.service.errors import Conflict, InvalidInput, ResourceNotFound
from shopfloor.store import Store
from shopfloor.store.git_records import (
    BATCH_COMPLETED,
    BATCH_FAILED,
    BATCH_QUEUED,
    BatchItemRecord,
)

CODE_SURVIVAL_SCAN = "code-survival-scan"
# The capabilities batch items may require: a worker registered with one gets its items.
KNOWN_CAPABILITIES = frozenset({CODE_SURVIVAL_SCAN})
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_RESULT_BYTES = 256 * 1024
PER_POLL = 5
ENDS = (BATCH_COMPLETED, BATCH_FAILED)


@dataclass(frozen=True)
class NewBatchItem:
    kind: str
    capability: str
    payload: dict[str, Any]
    project: str | None = None


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


class BatchWork:
    def __init__(self, store: Store, clock: Clock, lease_seconds: float) -> None:
        self.store = store
        self.clock = clock
        self.lease_ms = int(lease_seconds * 1000)
        self._capabilities: dict[str, tuple[str, ...]] = {}

    async def worker_capabilities(self, worker_id: str) -> tuple[str, ...]:
        """What a worker registered it can do (workers.metadata); never changes, so each
        process remembers it after the first read."""
        found = self._capabilities.get(worker_id)
        if found is None:
            worker = await self.store.get_worker(worker_id)
            listed = worker.metadata.get("capabilities") if worker else None
            found = tuple(c for c in listed or () if isinstance(c, str))
            self._capabilities[worker_id] = found
        return found

    async def enqueue(self, org_id: str, new: NewBatchItem) -> BatchItemRecord:
        if new.capability not in KNOWN_CAPABILITIES:
            known = ", ".join(sorted(KNOWN_CAPABILITIES))
            raise InvalidInput("capability", f"capability must be one of: {known}")
        if json_size(new.payload) > MAX_PAYLOAD_BYTES:
            raise InvalidInput("payload", f"payload must be at most {MAX_PAYLOAD_BYTES} bytes")
        if new.kind == CODE_SURVIVAL_SCAN:
            _check_scan_payload(new.payload)
        item = BatchItemRecord(
            id=f"bat_{uuid7_hex()}",  # time-ordered: id order is creation order
            org_id=org_id,
            kind=new.kind,
            capability=new.capability,
            payload=new.payload,
            status=BATCH_QUEUED,
            created_at=self.clock.now_ms(),
            project=new.project,
        )
        await self.store.insert_batch_item(item)
        return item

    async def item(self, org_id: str | None, item_id: str) -> BatchItemRecord:
        item = await self.store.get_batch_item(item_id)
        if item is None or (org_id is not None and item.org_id != org_id):
            raise ResourceNotFound("Batch item", item_id)
        return item

    async def items(
        self, org_id: str | None, status: str | None, limit: int
    ) -> list[BatchItemRecord]:
        return await self.store.list_batch_items(org_id, status, limit)

    async def lease_for(
        self,
        org_id: str,
        worker_id: str,
        capabilities: Sequence[str],
        projects: Sequence[str] | None,
    ) -> list[BatchItemRecord]:
        usable = [c for c in capabilities if c in KNOWN_CAPABILITIES]
        if not usable:
            return []
        now = self.clock.now_ms()
        return await self.store.lease_batch_items(
            org_id, usable, projects, worker_id, now, now + self.lease_ms, PER_POLL
        )

    async def report(
        self,
        worker_id: str,
        item_id: str,
        epoch: int,
        status: str,
        result: dict[str, Any] | None,
    ) -> BatchItemRecord:
        if status not in ENDS:
            raise InvalidInput("status", f"status must be one of: {', '.join(ENDS)}")
        if result is not None and json_size(result) > MAX_RESULT_BYTES:
            raise InvalidInput("result", f"result must be at most {MAX_RESULT_BYTES} bytes")
        item = await self.store.get_batch_item(item_id)
        if item is None:
            raise ResourceNotFound("Batch item", item_id)
        now = self.clock.now_ms()
        done = await self.store.finish_batch_item(item_id, worker_id, epoch, now, status, result)
        if done is None:
            raise Conflict(f"Batch item {item_id}: this worker does not hold its lease {epoch}")
        return done


def _check_scan_payload(payload: dict[str, Any]) -> None:
    repository, sessions = payload.get("repository"), payload.get("sessionIds")
    if not isinstance(repository, str) or not repository.strip():
        raise InvalidInput("payload.repository", "payload.repository must be a repository URL")
    if not isinstance(sessions, list) or not all(isinstance(s, str) for s in sessions):
        raise InvalidInput("payload.sessionIds", "payload.sessionIds must be a list of ids")
