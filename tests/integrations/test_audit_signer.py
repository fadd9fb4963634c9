"""The audit signer process and the appender's optimistic append, on both databases: the
child's signatures verify; a child that dies, hangs up, cannot start or is abandoned mid-
request never yields a wrong signature (the batch is signed in-process); a batch appended
from a peek commits only onto the head it was made from and only with every fact still
waiting, so a direct entry between the peek and the commit changes the order of nothing and
loses or repeats no fact."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shopfloor.clock import ManualClock
from shopfloor.service import audit, audit_chain, audit_signer
from shopfloor.service.audit import AuditLog, Who
from shopfloor.service.audit_keys import AuditKeys
from shopfloor.service.audit_signer import Signer
from shopfloor.store import Store
from tests.integrations.test_audit_batches import add_facts, fact_row, waiting


def digests(n: int, salt: str = "") -> list[bytes]:
    return [hashlib.sha256(f"{salt}{i}".encode()).digest() for i in range(n)]


def verify_all(key: Ed25519PrivateKey, signed: list[bytes], signatures: list[bytes]) -> None:
    public = key.public_key()
    assert len(signatures) == len(signed)
    for digest, signature in zip(signed, signatures, strict=True):
        public.verify(signature, digest)  # raises InvalidSignature if wrong


async def test_the_child_signs_batches_that_verify() -> None:
    signer, key = Signer(), Ed25519PrivateKey.generate()
    try:
        for n in (1, 50, 300):
            batch = digests(n, salt=str(n))
            verify_all(key, batch, await signer.sign(key, batch))
        assert signer.signed_elsewhere == 351
        other = Ed25519PrivateKey.generate()  # a second organisation's key, same child
        verify_all(other, digests(5), await signer.sign(other, digests(5)))
    finally:
        await signer.close()


async def test_a_child_that_dies_is_replaced_and_its_batch_signed_here() -> None:
    signer, key = Signer(), Ed25519PrivateKey.generate()
    try:
        await signer.sign(key, digests(3))
        first = signer._child
        assert first is not None
        first.kill()
        await first.wait()
        # Died between batches: the next batch starts a new child.
        verify_all(key, digests(5), await signer.sign(key, digests(5)))
        assert signer.signed_elsewhere == 8 and signer._child not in (None, first)
        # Dies with a batch on its way: that batch is signed here, correctly, and no new
        # child is tried until the pause is over.
        signer._child.kill()
        verify_all(key, digests(20), await signer.sign(key, digests(20)))
        assert signer.signed_elsewhere == 8 and signer._child is None
        verify_all(key, digests(2), await signer.sign(key, digests(2)))
        assert signer._child is None
        signer._retry_at = 0.0  # the pause is over
        verify_all(key, digests(7), await signer.sign(key, digests(7)))
        assert signer.signed_elsewhere == 15
    finally:
        await signer.close()


async def test_a_child_that_cannot_start_costs_nothing_but_speed() -> None:
    signer, key = Signer(["/nonexistent/python"]), Ed25519PrivateKey.generate()
    verify_all(key, digests(10), await signer.sign(key, digests(10)))
    assert signer.signed_elsewhere == 0


async def test_a_child_that_answers_nothing_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_signer, "ANSWER_TIMEOUT_S", 0.5)
    signer = Signer(["sh", "-c", "cat > /dev/null"])  # reads, never answers
    key = Ed25519PrivateKey.generate()
    try:
        verify_all(key, digests(4), await signer.sign(key, digests(4)))
        assert signer.signed_elsewhere == 0 and signer._child is None
    finally:
        await signer.close()


async def test_a_request_cancelled_midway_never_answers_the_next() -> None:
    signer, key = Signer(), Ed25519PrivateKey.generate()
    try:
        await signer.sign(key, digests(1))  # the child is up
        big = asyncio.create_task(signer.sign(key, digests(20_000, salt="big")))
        await asyncio.sleep(0.01)
        big.cancel()
        with pytest.raises(asyncio.CancelledError):
            await big
        small = digests(3, salt="small")
        verify_all(key, small, await signer.sign(key, small))
    finally:
        await signer.close()


def signed_log(store: Store, tmp_path: Path) -> tuple[AuditLog, Signer]:
    keys = AuditKeys(tmp_path / "audit-keys.json")
    keys.load_or_create(0)
    signer = Signer()
    return AuditLog(store, ManualClock(), keys, signer), signer


async def test_the_appender_chains_through_the_signer_process(store: Store, tmp_path: Path) -> None:
    log, signer = signed_log(store, tmp_path)
    try:
        await add_facts(store, [fact_row(n, ("org_a", "org_b")[n % 2]) for n in range(500)])
        assert await log.append_all_pending() == 500
        assert await waiting(store) == 0
        assert signer.signed_elsewhere == 500
        for org in ("org_a", "org_b"):
            exported = await log.export(org)
            assert [e["sequenceNumber"] for e in exported] == list(range(1, 251))
            assert audit_chain.verify(exported, audit_chain.public_keys(log.jwks(org))).valid
    finally:
        await signer.close()


async def test_a_commit_onto_a_moved_head_or_taken_facts_changes_nothing(
    store: Store, tmp_path: Path
) -> None:
    log, signer = signed_log(store, tmp_path)
    try:
        await add_facts(store, [fact_row(n, "org_a") for n in range(30)])
        facts, sequence, prev_hash = await store.peek_audit_facts("org_a", 20)
        assert [f.session_id for f in facts] == [f"ses_{n}" for n in range(20)]
        assert (sequence, prev_hash) == (1, audit_chain.GENESIS_HASH)
        kid, key = log.keys.signer("org_a")
        stale = audit._fact_entries(facts, sequence, prev_hash, kid, key)
        # A direct entry lands first: it chains all 30 waiting facts, then itself.
        await log.record("org_a", "key.minted", Who("admin", "operator"), ("key", "k1"))
        assert not await store.commit_audit_facts("org_a", facts, stale)
        # Made on the new head, but the facts are gone: still refused.
        head = await log.export("org_a")
        moved = audit._fact_entries(facts, len(head) + 1, head[-1]["entryHash"], kid, key)
        assert not await store.commit_audit_facts("org_a", facts, moved)
        exported = await log.export("org_a")
        assert [e["entityId"] for e in exported] == [f"ses_{n}" for n in range(30)] + ["k1"]
        assert (await log.verify("org_a")).valid
    finally:
        await signer.close()


async def test_an_entry_between_peek_and_commit_loses_and_repeats_nothing(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, signer = signed_log(store, tmp_path)
    sign = signer.sign

    async def slow_sign(key: Ed25519PrivateKey, batch: list[bytes]) -> list[bytes]:
        signatures = await sign(key, batch)
        # While the appender's batch is being signed, an action records a direct entry.
        await log.record("org_a", "key.minted", Who("admin", "operator"), ("key", "k1"))
        return signatures

    monkeypatch.setattr(signer, "sign", slow_sign)
    try:
        await add_facts(store, [fact_row(n, "org_a") for n in range(40)])
        # Peeks 25 and signs them; meanwhile the direct entry chains all 40: none is left.
        assert await log.append_pending("org_a", limit=25) == 0
        await add_facts(store, [fact_row(n, "org_a") for n in range(40, 45)])
        await log.append_all_pending()
        assert await waiting(store) == 0
        entities = [e["entityId"] for e in await log.export("org_a")]
        # Each fact once, in the outbox's order, the direct entry after those before it.
        assert entities == [f"ses_{n}" for n in range(40)] + ["k1"] + [
            f"ses_{n}" for n in range(40, 45)
        ]
        assert (await log.verify("org_a")).valid
    finally:
        await signer.close()
