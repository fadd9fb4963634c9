"""The audit appender's batches and pace, on both databases, and the entry builder's canonical
JSON against RFC 8785: batches over several organisations keep every chain whole and in the
outbox's order; an entry appended directly comes after the facts waiting before it; the
appender lets facts wait while the process is busy, but never past its bounds."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.clock import ManualClock
from shopfloor.service import audit, audit_chain
from shopfloor.service.audit import AuditLog, Who
from shopfloor.service.audit_appender import Appender, Pace
from shopfloor.service.audit_keys import AuditKeys
from shopfloor.store import SqlStore, Store
from shopfloor.store import schema as t
from shopfloor.store.integration_records import AuditFact, AuditRecord
from shopfloor.store.records import Expect
from tests.agentfactory.helpers import ADMIN, enqueue

ORGS = ("org_a", "org_b", "org_c")


def fact_row(n: int, org: str, event: str = "session.claimed") -> dict[str, Any]:
    return {
        "org_id": org,
        "session_id": f"ses_{n}",
        "event_type": event,
        "worker_id": f"wkr_{n % 4}",
        "status": "claimed" if event == "session.claimed" else "completed",
        "queue": "default",
        "lease_epoch": 1,
        "at": 1_000 + n,
    }


async def add_facts(store: Store, rows: list[dict[str, Any]]) -> None:
    assert isinstance(store, SqlStore)
    async with store.db.begin() as conn:
        await conn.execute(t.audit_outbox.insert(), rows)


async def waiting(store: Store) -> int:
    return await store.audit_waiting(1_000_000)


def audit_log(store: Store, tmp_path: Path) -> AuditLog:
    keys = AuditKeys(tmp_path / "audit-keys.json")
    keys.load_or_create(0)
    return AuditLog(store, ManualClock(), keys)


async def test_batches_over_organisations_keep_each_chain_whole_and_in_order(
    store: Store, tmp_path: Path
) -> None:
    log = audit_log(store, tmp_path)
    rows = [fact_row(n, ORGS[n % 3]) for n in range(40)]
    await add_facts(store, rows[:25])
    # A direct entry of org_b: after org_b's facts waiting before it, before the later ones.
    await log.record("org_b", "key.minted", Who("admin", "operator"), ("key", "k1"))
    await add_facts(store, rows[25:])
    flushed = len([r for r in rows[:25] if r["org_id"] == "org_b"])
    assert await log.append_all_pending(limit=4) == len(rows) - flushed
    assert await waiting(store) == 0
    for org in ORGS:
        exported = await log.export(org)
        assert [e["sequenceNumber"] for e in exported] == list(range(1, len(exported) + 1))
        sessions = [e["entityId"] for e in exported if e["entityType"] == "session"]
        assert sessions == [r["session_id"] for r in rows if r["org_id"] == org]  # once, in order
        assert (await log.verify(org)).valid
        jwks = audit_chain.public_keys(log.jwks(org))
        assert audit_chain.verify(exported, jwks).valid
    b = [e["entityId"] for e in await log.export("org_b")]
    before = [r["session_id"] for r in rows[:25] if r["org_id"] == "org_b"]
    assert b.index("k1") == len(before)


async def test_a_read_chains_the_waiting_facts_first(store: Store, tmp_path: Path) -> None:
    log = audit_log(store, tmp_path)
    await add_facts(store, [fact_row(n, "org_a") for n in range(450)])  # more than two batches
    entries = await log.export("org_a")
    assert len(entries) == 450 and await waiting(store) == 0
    assert (await log.verify("org_a")).valid


class Requests:
    """A stand-in for the process's request counter."""

    def __init__(self) -> None:
        self.started = 0


async def test_the_appender_waits_while_busy_but_not_past_its_lag(
    store: Store, tmp_path: Path
) -> None:
    log = audit_log(store, tmp_path)
    requests, now = Requests(), [0.0]
    pace = Pace(interval_s=0.25, max_lag_s=2.0, max_backlog=100, busy_requests_per_s=40)
    appender = Appender(log, pace, lambda: requests.started, lambda: now[0])
    await add_facts(store, [fact_row(n, "org_a") for n in range(5)])
    requests.started += 10  # 10 in a quarter second: busy
    assert await appender.tick() == 0 and await waiting(store) == 5
    for _ in range(7):  # 1.75 s of busy looks: still within the lag
        now[0] += 0.25
        requests.started += 10
        assert await appender.tick() == 0
    now[0] += 0.25  # 2 s since the first look found them: due, busy or not
    requests.started += 10
    assert await appender.tick() == 5 and await waiting(store) == 0
    # Idle: whatever waits is appended at the next look.
    await add_facts(store, [fact_row(n, "org_a") for n in range(5, 8)])
    now[0] += 0.25
    requests.started += 1
    assert await appender.tick() == 3


async def test_the_appender_appends_a_full_backlog_however_busy(
    store: Store, tmp_path: Path
) -> None:
    log = audit_log(store, tmp_path)
    requests, now = Requests(), [0.0]
    pace = Pace(interval_s=0.25, max_lag_s=3600.0, max_backlog=30, busy_requests_per_s=40)
    appender = Appender(log, pace, lambda: requests.started, lambda: now[0])
    await add_facts(store, [fact_row(n, "org_a") for n in range(29)])
    requests.started += 100
    assert await appender.tick() == 0
    await add_facts(store, [fact_row(29, "org_a")])
    requests.started += 100
    assert await appender.tick() == 30
    assert (await log.verify("org_a")).valid


# -- the entry builder's canonical JSON --

_text = st.text(max_size=12)  # any code point but lone surrogates: controls, quotes, emoji
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {k: _text for k in ("id", "org_id", "event_type", "actor_id", "actor_type")}
        | {k: _text for k in ("entity_type", "entity_id", "prev_hash", "signing_key_id")}
    ),
    payload=st.dictionaries(_text, _json, max_size=4),
    sequence=st.integers(1, 2**53 - 1),
    at=st.integers(0, 253_402_300_799_999),  # up to the year 9999
)
def test_seal_hashes_and_signs_the_rfc8785_form(
    fields: dict[str, str], payload: dict[str, Any], sequence: int, at: int
) -> None:
    key = audit_keys_key()
    row = fields | {
        "payload": rfc8785.dumps(payload).decode(),
        "sequence_number": sequence,
        "occurred_at": at,
    }
    hashed, signature = audit_chain.seal(row, key)
    record = AuditRecord(**row, entry_hash=hashed, signature=signature)
    event = audit_chain.event_of(record)
    assert hashed == hashlib.sha256(rfc8785.dumps(event) + fields["prev_hash"].encode()).hexdigest()
    unsigned = {k: v for k, v in audit_chain.entry_of(record).items() if k != "signature"}
    digest = hashlib.sha256(rfc8785.dumps(unsigned)).digest()
    key.public_key().verify(audit_chain.unb64url(signature), digest)


_KEY: list[Any] = []


def audit_keys_key() -> Any:
    if not _KEY:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        _KEY.append(Ed25519PrivateKey.generate())
    return _KEY[0]


@settings(max_examples=300, deadline=None)
@given(
    event=st.sampled_from(["session.created", "session.claimed", "session.ended"]),
    worker=st.none() | _text,
    issue=st.none() | _text,
    queue=_text,
    status=_text,
    epoch=st.integers(0, 2**60),
)
def test_fact_payloads_are_rfc8785(
    event: str, worker: str | None, issue: str | None, queue: str, status: str, epoch: int
) -> None:
    fact = AuditFact(1, "org", "ses", event, worker, status, queue, epoch, 0, issue_id=issue)
    if event == "session.created":
        expected: dict[str, Any] = {"queue": queue, "issueId": issue, "status": status}
    else:
        expected = {"queue": queue, "status": status, "workerId": worker, "leaseEpoch": epoch}
    try:
        wanted = rfc8785.dumps(expected)
    except rfc8785.IntegerDomainError:  # beyond I-JSON's integers: refused by both
        try:
            audit._fact_payload_text(fact)
        except rfc8785.IntegerDomainError:
            return
        raise AssertionError(f"{epoch} accepted, but RFC 8785 refuses it") from None
    assert audit._fact_payload_text(fact).encode() == wanted
    given_payload = dataclasses.replace(fact, payload='{"reason":"r"}')
    assert audit._fact_payload_text(given_payload) == '{"reason":"r"}'


# RFC 8785 section 3.2.2 (the sample input and output) and 3.2.3 (sorting of property names).
RFC_INPUT = (
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
    ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
    ' "literals": [null, true, false]}'
)
RFC_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)
RFC_SORT_INPUT = {
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\U0001f600": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis",
}
RFC_SORT_ORDER = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_canonical_matches_the_rfc8785_examples() -> None:
    assert audit_chain.canonical(json.loads(RFC_INPUT)).decode() == RFC_OUTPUT
    out = audit_chain.canonical(RFC_SORT_INPUT).decode()
    assert list(json.loads(out)) == RFC_SORT_ORDER
    # The RFC's string sample in an entry's own members, where seal encodes it itself.
    sample = json.loads(RFC_INPUT)["string"]
    row = {
        "id": sample,
        "org_id": "org",
        "sequence_number": 1,
        "event_type": "e",
        "actor_id": sample,
        "actor_type": "t",
        "entity_type": "s",
        "entity_id": sample,
        "payload": RFC_OUTPUT,
        "prev_hash": "0" * 64,
        "signing_key_id": "k",
        "occurred_at": 0,
    }
    hashed, _ = audit_chain.seal(row, audit_keys_key())
    event = audit_chain.event_of(AuditRecord(**row, entry_hash="", signature=""))
    assert hashed == hashlib.sha256(rfc8785.dumps(event) + b"0" * 64).hexdigest()


async def test_outbox_count_is_bounded(store: Store) -> None:
    await add_facts(store, [fact_row(n, "org_a") for n in range(12)])
    assert await store.audit_waiting(5) == 5
    assert await store.audit_waiting(50) == 12
    [backlog] = await store.audit_backlog()
    assert (backlog.org_id, backlog.waiting, backlog.oldest_at) == ("org_a", 12, 1_000)


async def test_a_stop_that_loses_its_race_writes_no_entry(api: httpx.AsyncClient) -> None:
    """The stop's outbox fact is written in the stop's transaction: a fenced change that
    matches nothing (the session changed first) rolls it back with it."""
    session_id = (await enqueue(api))["sessionId"]
    store = api.app.state.services.dispatcher.store  # type: ignore[attr-defined]
    session = await store.get_session(session_id)
    fact = audit.outbox_fact(session, audit.SESSION_STOPPED, Who("op", "operator"), {"r": 1})
    before = await waiting(store)
    stale = Expect(None, session.lease_epoch + 1, (session.status,))  # another epoch: no match
    assert await store.update_session(session_id, stale, {"status": "stopped"}, None, fact) is None
    assert await waiting(store) == before
    current = Expect(None, session.lease_epoch, (session.status,))
    assert await store.update_session(session_id, current, {"status": "stopped"}, None, fact)
    assert await waiting(store) == before + 2  # the stop, then the end the trigger wrote
    entries = (await api.get("/api/audit", headers=ADMIN, params={"entityId": session_id})).json()
    kinds = [e["eventType"] for e in entries["events"]]
    assert kinds == ["session.created", "session.stopped", "session.ended"]
