"""What a poll by a runtime-JWT worker carries beyond the AgentFactory reply (the seed's poll
page): `gitCredentials` for the repositories of the sessions it just claimed, and `batchWork`
leased to it if it registered a batch item's capability."""

from __future__ import annotations

from typing import Any

from shopfloor.api.state import Services
from shopfloor.api.timefmt import iso
from shopfloor.service.auth import RuntimeClaims
from shopfloor.store.git_records import BatchItemRecord
from shopfloor.store.records import SessionRecord


async def runtime_poll_extras(
    svc: Services, claims: RuntimeClaims, claimed: list[SessionRecord]
) -> dict[str, Any]:
    credentials = await svc.git.for_sessions(claims.org_id, claimed) if claimed else []
    extras: dict[str, Any] = {
        "gitCredentials": [
            {"token": c.token, "cloneUrl": c.clone_url, "expiresAt": iso(c.expires_at)}
            for c in credentials
        ]
    }
    capabilities = await svc.batch.worker_capabilities(claims.worker_id)
    if capabilities:
        projects = None if claims.projects is None else sorted(claims.projects)
        leased = await svc.batch.lease_for(claims.org_id, claims.worker_id, capabilities, projects)
        if leased:
            extras["batchWork"] = [batch_work_item(i) for i in leased]
    return extras


def batch_work_item(item: BatchItemRecord) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind,
        "capability": item.capability,
        "payload": item.payload,
        "leaseEpoch": item.lease_epoch,
        "leaseExpiresAt": iso(item.lease_expires_at),
        "attempts": item.attempts,
    }
