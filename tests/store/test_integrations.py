"""The store contract of webhook deliveries, webhook secrets and the audit chain, on both
backends."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools

from shopfloor.store import Store
from shopfloor.store.integration_records import (
    AuditQuery,
    AuditRecord,
    TriggerRule,
    WebhookDelivery,
    WebhookSecretRecord,
)
from shopfloor.store.sql_integrations import GENESIS_HASH


def delivery(
    event_id: str = "whd_1", delivery_id: str = "d-1", org: str = "org_a"
) -> WebhookDelivery:
    return WebhookDelivery(
        id=event_id,
        org_id=org,
        provider="linear",
        delivery_id=delivery_id,
        event_type="linear.agent_session.created",
        correlation_id="cor_1",
        body={"type": "AgentSessionEvent", "n": 1},
        received_at=10,
    )


async def test_a_delivery_is_stored_once_per_delivery_id(store: Store) -> None:
    assert await store.insert_delivery(delivery()) is not None
    assert await store.insert_delivery(delivery("whd_2")) is None
    # The same delivery id of another organisation is another delivery.
    assert await store.insert_delivery(delivery("whd_3", org="org_b")) is not None
    found = await store.find_delivery("org_a", "linear", "d-1")
    assert (
        found is not None
        and found.id == "whd_1"
        and found.body == {"type": "AgentSessionEvent", "n": 1}
    )


async def test_a_lease_is_exclusive_until_it_lapses(store: Store) -> None:
    await store.insert_delivery(delivery())
    assert await store.due_deliveries(now=0) == ["whd_1"]
    first = await store.lease_delivery("whd_1", "p1", now=0, expires_at=100)
    assert first is not None and first.attempts == 1
    assert await store.lease_delivery("whd_1", "p2", now=50, expires_at=150) is None
    assert await store.due_deliveries(now=50) == []
    second = await store.lease_delivery("whd_1", "p2", now=100, expires_at=200)
    assert second is not None and second.attempts == 2
    # The first holder lost its lease: it can no longer finish the delivery.
    assert not await store.finish_delivery("whd_1", "p1", "processed", None, {}, 120)
    assert await store.finish_delivery("whd_1", "p2", "skipped", "why", {"a": 1}, 130)
    done = await store.get_delivery("whd_1")
    assert done is not None and (done.status, done.reason, done.result) == (
        "skipped",
        "why",
        {"a": 1},
    )
    assert await store.lease_delivery("whd_1", "p3", now=10_000, expires_at=20_000) is None
    assert await store.due_deliveries(now=10_000) == []


async def test_webhook_secrets_are_replaced_and_deleted(store: Store) -> None:
    await store.put_webhook_secret(WebhookSecretRecord("org_a", "linear", "sealed-1", 1))
    await store.put_webhook_secret(WebhookSecretRecord("org_a", "linear", "sealed-2", 2))
    found = await store.get_webhook_secret("org_a", "linear")
    assert found is not None and found.ciphertext == "sealed-2"
    assert await store.get_webhook_secret("org_b", "linear") is None
    assert await store.delete_webhook_secret("org_a", "linear")
    assert not await store.delete_webhook_secret("org_a", "linear")


def entry(sequence: int, prev: str, org: str = "org_a", tag: str = "") -> AuditRecord:
    return AuditRecord(
        id=f"aud_{org}_{sequence}{tag}",
        org_id=org,
        sequence_number=sequence,
        event_type="t",
        actor_id="a",
        actor_type="test",
        entity_type="e",
        entity_id=str(sequence),
        payload="{}",
        prev_hash=prev,
        entry_hash=f"{org}-{sequence}".ljust(64, "0")[:64],
        signature="s",
        signing_key_id="k",
        occurred_at=sequence,
    )


async def test_the_audit_chain_links_and_never_forks(store: Store) -> None:
    made = await asyncio.gather(*(store.append_audit("org_a", entry) for _ in range(20)))
    await store.append_audit("org_b", lambda seq, prev: entry(seq, prev, "org_b"))
    chain = await store.audit_entries(AuditQuery("org_a", limit=100))
    assert [e.sequence_number for e in chain] == list(range(1, 21))
    assert chain[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(chain))
    assert sorted(e.id for e in made) == sorted(e.id for e in chain)
    [other] = await store.audit_entries(AuditQuery("org_b"))
    assert other.sequence_number == 1 and other.prev_hash == GENESIS_HASH
    page = await store.audit_entries(AuditQuery("org_a", limit=5, after_sequence=10))
    assert [e.sequence_number for e in page] == [11, 12, 13, 14, 15]
    by_entity = await store.audit_entries(AuditQuery("org_a", entity_id="7"))
    assert [e.sequence_number for e in by_entity] == [7]


async def test_an_append_that_loses_its_sequence_number_retries(store: Store) -> None:
    """A writer outside this store's serialisation took the sequence number the append read:
    the unique constraint refuses the duplicate and the append takes the next one."""
    await store.append_audit("org_a", entry)
    calls = []

    def racing(sequence: int, prev: str) -> AuditRecord:
        calls.append(sequence)
        if len(calls) == 1:
            return dataclasses.replace(entry(1, prev, tag="x"), sequence_number=1)
        return entry(sequence, prev, tag="y")

    made = await store.append_audit("org_a", racing)
    assert made.sequence_number == 2 and calls == [2, 2]


async def test_trigger_rules_are_per_organisation(store: Store) -> None:
    rule = TriggerRule("trg_1", "org_a", "github", "github.push", "p", 1, {"ref": "x"})
    await store.insert_trigger(rule)
    await store.insert_trigger(dataclasses.replace(rule, id="trg_2", event_type="github.x"))
    assert await store.list_triggers("org_a", "github", "github.push") == [rule]
    assert len(await store.list_triggers("org_a")) == 2
    assert await store.list_triggers("org_b") == []
    assert not await store.delete_trigger("org_b", "trg_1")
    assert await store.delete_trigger("org_a", "trg_1")
