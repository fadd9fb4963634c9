"""The audit log: every security-relevant action, appended to its organisation's hash chain,
each entry signed (service/audit_chain.py says what is hashed and signed; audit_keys.py where
the keys live). Callers record what they did; a failure to record is logged, never turned
into a failure of the action, which has already happened."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shopfloor.clock import Clock
from shopfloor.service import audit_chain
from shopfloor.service.audit_keys import AuditKeys
from shopfloor.service.audit_signer import Signer
from shopfloor.store import Store, audit_triggers
from shopfloor.store.integration_records import (
    AuditBacklog,
    AuditFact,
    AuditQuery,
    AuditRecord,
)
from shopfloor.store.records import SessionRecord

log = logging.getLogger("shopfloor.audit")
_string = json.encoder.encode_basestring  # RFC 8785's form of any str (the C encoder's)
_SAFE_INT = 2**53

# Event types, as the platform names them (`webhook.ingest`, `session.started`…).
KEY_MINTED = "key.minted"
KEY_REVOKED = "key.revoked"
M2M_CLIENT_CREATED = "m2m_client.created"
M2M_CLIENT_REVOKED = "m2m_client.revoked"
SESSION_CREATED = audit_triggers.CREATED_EVENT  # "session.created", through the outbox
SESSION_CLAIMED = audit_triggers.CLAIMED_EVENT  # "session.claimed", through the outbox
SESSION_ENDED = audit_triggers.ENDED_EVENT  # "session.ended", through the outbox
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
# Facts appended per transaction: big enough to amortise the transaction, small enough that
# the chain (and on SQLite the connection) is held only milliseconds.
FACTS_PER_BATCH = 200
# From this many entries the appender's batch is signed by the signer process; a smaller one
# is signed here, as the round trip to the child would cost more than the signatures.
SIGN_ELSEWHERE_FROM = 16
ALL_FACTS = 2**31 - 1


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


def outbox_fact(
    session: SessionRecord, event_type: str, who: Who, payload: dict[str, Any]
) -> dict[str, object]:
    """The audit outbox row of an action on `session` (as the action leaves it) by `who`,
    for the store to write in the action's transaction."""
    text = audit_chain.canonical(payload).decode()
    return audit_triggers.action_row(session, event_type, (who.id, who.type), payload=text)


def _entry_ids(count: int) -> list[str]:
    """`count` fresh entry ids (128 random bits each), from one read of the OS's randomness."""
    raw = os.urandom(16 * count).hex()
    return ["aud_" + raw[i : i + 32] for i in range(0, 32 * count, 32)]


def _sealed(row: dict[str, Any], key: Ed25519PrivateKey) -> AuditRecord:
    """The entry of an audit_events row (all columns but entry_hash and signature), hashed
    and signed (audit_chain says what they cover)."""
    hashed, signature = audit_chain.seal(row, key)
    return AuditRecord(**row, entry_hash=hashed, signature=signature)


def _fact_payload_text(fact: AuditFact) -> str:
    """RFC 8785 form of a fact's payload: a creation's {issueId, queue, status}, a claim's or
    end's {leaseEpoch, queue, status, workerId}. Fixed ASCII member names in sorted order,
    so only the values need encoding."""
    queue, status = _string(fact.queue), _string(fact.status)
    if fact.payload is not None:
        return fact.payload
    if fact.event_type == SESSION_CREATED:
        issue = "null" if fact.issue_id is None else _string(fact.issue_id)
        return f'{{"issueId":{issue},"queue":{queue},"status":{status}}}'
    epoch = fact.lease_epoch
    lease = str(epoch) if -_SAFE_INT < epoch < _SAFE_INT else audit_chain.canonical(epoch).decode()
    worker = "null" if fact.worker_id is None else _string(fact.worker_id)
    return f'{{"leaseEpoch":{lease},"queue":{queue},"status":{status},"workerId":{worker}}}'


def _fact_actor(fact: AuditFact) -> tuple[str, str]:
    """Who a fact's entry names: the creator of a session; the worker that claimed or held
    it for a claim or an end."""
    if fact.actor_id is not None and fact.actor_type is not None:
        return fact.actor_id, fact.actor_type
    return fact.worker_id or "unknown", "worker"


def _fact_entries(
    facts: list[AuditFact], sequence: int, prev_hash: str, kid: str, key: Ed25519PrivateKey
) -> list[AuditRecord]:
    """The chain entries of a batch of one organisation's facts, linked from `prev_hash`."""
    unsigned = _unsigned_entries(facts, sequence, prev_hash, kid)
    return _signed(unsigned, [key.sign(digest) for _, _, digest in unsigned])


def _signed(
    unsigned: list[tuple[dict[str, Any], str, bytes]], signatures: list[bytes]
) -> list[AuditRecord]:
    """The records of entries made by `_unsigned_entries`, with their signatures."""
    return [
        AuditRecord(**row, entry_hash=hashed, signature=audit_chain.b64url(signature))
        for (row, hashed, _), signature in zip(unsigned, signatures, strict=True)
    ]


def _unsigned_entries(
    facts: list[AuditFact], sequence: int, prev_hash: str, kid: str
) -> list[tuple[dict[str, Any], str, bytes]]:
    """Each fact's entry row, linked from `prev_hash`, with its entry hash and the digest
    its signature is to sign."""
    entries = []
    for fact, entry_id in zip(facts, _entry_ids(len(facts)), strict=True):
        actor_id, actor_type = _fact_actor(fact)
        row = {
            "id": entry_id,
            "org_id": fact.org_id,
            "sequence_number": sequence,
            "event_type": fact.event_type,
            "actor_id": actor_id,
            "actor_type": actor_type,
            "entity_type": "session",
            "entity_id": fact.session_id,
            "payload": _fact_payload_text(fact),
            "prev_hash": prev_hash,
            "signing_key_id": kid,
            "occurred_at": fact.at,
        }
        hashed, digest = audit_chain.seal_digest(row)
        entries.append((row, hashed, digest))
        sequence, prev_hash = sequence + 1, hashed
    return entries


class AuditLog:
    """An organisation's chain takes entries in two ways. Sessions created, claimed and
    ended are written as facts to the audit outbox in the transaction of the action and
    chained later, in batches, by the appender (service/audit_appender.py); every other
    entry is chained by its caller (`record`), after the outbox facts waiting before it, so
    a chain is in the order the actions were committed. A reader (`entries`, `export`,
    `verify`) first chains what waits, so it sees every action committed before it asked,
    whatever the appender's lag."""

    def __init__(
        self, store: Store, clock: Clock, keys: AuditKeys, signer: Signer | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.keys = keys
        self.signer = signer  # None: the appender signs in this process too

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
        """Append an entry, after the organisation's outbox facts waiting before it."""
        text = audit_chain.canonical(payload).decode()
        now = self.clock.now_ms()
        [entry_id] = _entry_ids(1)
        kid, key = self.keys.signer(org_id)
        own: list[AuditRecord] = []

        def build(facts: list[AuditFact], sequence: int, prev_hash: str) -> list[AuditRecord]:
            records = _fact_entries(facts, sequence, prev_hash, kid, key)
            if records:
                sequence, prev_hash = records[-1].sequence_number + 1, records[-1].entry_hash
            row = {
                "id": entry_id,
                "org_id": org_id,
                "sequence_number": sequence,
                "event_type": event_type,
                "actor_id": who.id,
                "actor_type": who.type,
                "entity_type": entity[0],
                "entity_id": entity[1],
                "payload": text,
                "prev_hash": prev_hash,
                "signing_key_id": kid,
                "occurred_at": now,
            }
            own[:] = [_sealed(row, key)]
            return [*records, *own]

        # Every fact waiting, however many (the appender's bound keeps them few), in the
        # entry's own transaction: none committed before it is chained after it.
        await self.store.append_audit_facts(org_id, ALL_FACTS, build, wait=True)
        return own[0]

    async def flush(self, org_id: str) -> int:
        """Chain the organisation's outbox facts, waiting for its chain if another process
        is appending to it, until none was waiting. Returns how many."""
        total = 0
        while (taken := await self.append_pending(org_id, wait=True)) > 0:
            total += taken
            if taken < FACTS_PER_BATCH:
                break
            await asyncio.sleep(0)  # let requests in between batches
        return total

    async def append_pending(
        self, org_id: str, limit: int = FACTS_PER_BATCH, *, wait: bool = False
    ) -> int:
        """Append up to `limit` of the organisation's facts waiting in the audit outbox to
        its chain, in one transaction. Returns how many were appended (0: none waiting, or,
        unless `wait`, another process is appending them)."""
        if not wait and self.signer is not None:
            return await self._append_signed_elsewhere(org_id, limit, self.signer)
        return await self._append_in_transaction(org_id, limit, wait)

    async def _append_in_transaction(self, org_id: str, limit: int, wait: bool) -> int:
        kid, key = self.keys.signer(org_id)

        def build(facts: list[AuditFact], sequence: int, prev_hash: str) -> list[AuditRecord]:
            return _fact_entries(facts, sequence, prev_hash, kid, key)

        return await self.store.append_audit_facts(org_id, limit, build, wait=wait)

    async def _append_signed_elsewhere(self, org_id: str, limit: int, signer: Signer) -> int:
        """The appender's append: the facts and the chain's head are read, the entries made
        and signed (a large batch by the signer process, while this process serves
        requests) outside any transaction, then committed if nothing else was appended
        meanwhile. If something was (a direct entry, a reader's flush, another process),
        the batch is made again inside the transaction, as `append_pending` does."""
        facts, sequence, prev_hash = await self.store.peek_audit_facts(org_id, limit)
        if not facts:
            return 0
        kid, key = self.keys.signer(org_id)
        unsigned = _unsigned_entries(facts, sequence, prev_hash, kid)
        digests = [digest for _, _, digest in unsigned]
        if len(digests) >= SIGN_ELSEWHERE_FROM:
            signatures = await signer.sign(key, digests)
        else:
            signatures = [key.sign(d) for d in digests]
        if await self.store.commit_audit_facts(org_id, facts, _signed(unsigned, signatures)):
            return len(facts)
        return await self._append_in_transaction(org_id, limit, wait=False)

    async def append_all_pending(self, limit: int = FACTS_PER_BATCH) -> int:
        """One pass of the appender over every organisation with facts waiting: a batch
        each, until none is left or another process holds the chains. Returns the count."""
        total = 0
        for org_id in await self.store.audit_backlog_orgs():
            while (appended := await self.append_pending(org_id, limit)) > 0:
                total += appended
                if appended < limit:
                    break
                await asyncio.sleep(0)  # let requests in between batches
        return total

    async def entries(self, query: AuditQuery, *, flush: bool = True) -> list[AuditRecord]:
        """The organisation's entries the query selects, every fact waiting chained first."""
        if flush:
            await self.flush(query.org_id)
        return await self.store.audit_entries(query)

    async def export(self, org_id: str) -> list[dict[str, Any]]:
        """Every entry of the organisation's chain, in order, in the exported form."""
        out: list[dict[str, Any]] = []
        after = 0
        await self.flush(org_id)
        while True:
            query = AuditQuery(org_id, limit=VERIFY_PAGE, after_sequence=after)
            page = await self.entries(query, flush=False)
            out.extend(audit_chain.entry_of(r) for r in page)
            if len(page) < VERIFY_PAGE:
                return out
            after = page[-1].sequence_number

    async def verify(self, org_id: str) -> audit_chain.Verdict:
        """Verify the stored chain against the organisation's published keys."""
        keys = audit_chain.public_keys(self.keys.jwks(org_id))
        return audit_chain.verify(await self.export(org_id), keys)

    async def backlog(self) -> list[AuditBacklog]:
        """Per organisation, the facts waiting in the outbox (the appender's lag)."""
        return await self.store.audit_backlog()

    def jwks(self, org_id: str) -> dict[str, Any]:
        return self.keys.jwks(org_id)
