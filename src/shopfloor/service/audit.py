"""The audit log: every security-relevant action, appended to its organisation's hash chain,
each entry signed (service/audit_chain.py says what is hashed and signed; audit_keys.py where
the keys live). Callers record what they did; a failure to record is logged, never turned
into a failure of the action, which has already happened."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import rfc8785

from shopfloor.clock import Clock
from shopfloor.service import audit_chain
from shopfloor.service.audit_keys import AuditKeys
from shopfloor.store import Store
from shopfloor.store.integration_records import AuditQuery, AuditRecord

log = logging.getLogger("shopfloor.audit")

# Event types, as the platform names them (`webhook.ingest`, `session.started`…).
KEY_MINTED = "key.minted"
KEY_REVOKED = "key.revoked"
M2M_CLIENT_CREATED = "m2m_client.created"
M2M_CLIENT_REVOKED = "m2m_client.revoked"
SESSION_CREATED = "session.created"
SESSION_STOPPED = "session.stopped"
SESSION_TRANSFERRED = "session.transferred"
WORKER_REGISTERED = "worker.registered"
WORKER_DECLARED_DEAD = "worker.declared_dead"
WEBHOOK_INGEST = "webhook.ingest"
WEBHOOK_PROCESSED = "webhook.processed"
WEBHOOK_SECRET_SET = "webhook_secret.set"
WEBHOOK_SECRET_DELETED = "webhook_secret.deleted"
TRIGGER_CREATED = "trigger.created"
TRIGGER_DELETED = "trigger.deleted"
GIT_SOURCE_CREATED = "git_source.created"
GIT_SOURCE_DELETED = "git_source.deleted"
REPOSITORY_CREATED = "repository.created"
REPOSITORY_DELETED = "repository.deleted"

VERIFY_PAGE = 500


@dataclass(frozen=True)
class Who:
    """The actor an entry names: an API key, an M2M client, the admin key, a worker, a
    webhook provider, or the server itself."""

    id: str
    type: str


SYSTEM = Who("shopfloor", "system")


def principal_actor(identity: str) -> Who:
    if identity == "admin":
        return Who("admin", "operator")
    if identity.startswith("m2m_"):
        return Who(identity, "m2m_client")
    return Who(identity, "api_key")


class AuditLog:
    def __init__(self, store: Store, clock: Clock, keys: AuditKeys) -> None:
        self.store = store
        self.clock = clock
        self.keys = keys

    async def record(
        self,
        org_id: str,
        event_type: str,
        who: Who,
        entity: tuple[str, str],
        payload: dict[str, Any] | None = None,
    ) -> AuditRecord | None:
        """Append an entry (None, logged, if it could not be written)."""
        try:
            return await self.append(org_id, event_type, who, entity, payload or {})
        except Exception:
            log.exception("audit entry %s for %s not written", event_type, org_id)
            return None

    async def append(
        self,
        org_id: str,
        event_type: str,
        who: Who,
        entity: tuple[str, str],
        payload: dict[str, Any],
    ) -> AuditRecord:
        text = rfc8785.dumps(payload).decode()
        now = self.clock.now_ms()
        entry_id = "aud_" + uuid.uuid4().hex
        kid, key = self.keys.signer(org_id)

        def build(sequence: int, prev_hash: str) -> AuditRecord:
            unsigned = AuditRecord(
                id=entry_id,
                org_id=org_id,
                sequence_number=sequence,
                event_type=event_type,
                actor_id=who.id,
                actor_type=who.type,
                entity_type=entity[0],
                entity_id=entity[1],
                payload=text,
                prev_hash=prev_hash,
                entry_hash="",
                signature="",
                signing_key_id=kid,
                occurred_at=now,
            )
            hashed = audit_chain.entry_hash(audit_chain.event_of(unsigned), prev_hash)
            entry = audit_chain.entry_of(unsigned) | {"entryHash": hashed}
            signature = audit_chain.sign(entry, key)
            return dataclasses.replace(unsigned, entry_hash=hashed, signature=signature)

        return await self.store.append_audit(org_id, build)

    async def entries(self, query: AuditQuery) -> list[AuditRecord]:
        return await self.store.audit_entries(query)

    async def export(self, org_id: str) -> list[dict[str, Any]]:
        """Every entry of the organisation's chain, in order, in the exported form."""
        out: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.entries(AuditQuery(org_id, limit=VERIFY_PAGE, after_sequence=after))
            out.extend(audit_chain.entry_of(r) for r in page)
            if len(page) < VERIFY_PAGE:
                return out
            after = page[-1].sequence_number

    async def verify(self, org_id: str) -> audit_chain.Verdict:
        """Verify the stored chain against the organisation's published keys."""
        keys = audit_chain.public_keys(self.keys.jwks(org_id))
        return audit_chain.verify(await self.export(org_id), keys)

    def jwks(self, org_id: str) -> dict[str, Any]:
        return self.keys.jwks(org_id)
