"""The audit log (issue 21) on both databases: security-relevant actions are appended to the
organisation's hash chain, each entry signed; an organisation's key reads its own log only;
an entry modified, removed or reordered in the database is found by the server's verify and
by `shopfloor audit verify` with the exported log and the JWKS alone; concurrent writers
never fork the chain."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from shopfloor.cli.main import app as cli
from shopfloor.clock import ManualClock
from shopfloor.service import audit_chain
from shopfloor.service.audit import AuditLog, Who
from shopfloor.service.audit_keys import AuditKeys, rotate
from shopfloor.store import open_store
from tests.agentfactory.helpers import ADMIN, register
from tests.conftest import Backend
from tests.integrations.helpers import linear_body, post_linear, settle
from tests.platform.test_tenancy import key, mint, new_org, queue


def services(api: httpx.AsyncClient) -> Any:
    return api.app.state.services  # type: ignore[attr-defined]


async def entries(api: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[Any]:
    reply = await api.get("/api/audit", headers=headers, params=params)
    assert reply.status_code == 200, reply.text
    found: list[Any] = reply.json()["events"]
    return found


async def jwks_of(api: httpx.AsyncClient, org: str) -> dict[str, Any]:
    reply = await api.get(f"/.well-known/audit-keys/{org}")
    assert reply.status_code == 200
    found: dict[str, Any] = reply.json()
    return found


async def test_actions_are_chained_and_signed(api: httpx.AsyncClient, clock: ManualClock) -> None:
    a = await new_org(api, "a")
    key_a = await key(api, "a")
    session = (await queue(api, key_a)).json()
    stopped = await api.post(f"/api/v1/sessions/{session['sessionId']}/stop", headers=key_a)
    assert stopped.status_code == 200
    log = await entries(api, key_a)
    # The stop's entry, then its end's (the status change), both written with the stop.
    assert [e["eventType"] for e in log] == [
        "key.minted",
        "session.created",
        "session.stopped",
        "session.ended",
    ]
    assert [e["sequenceNumber"] for e in log] == [1, 2, 3, 4]
    assert log[0]["prevHash"] == "0" * 64 and log[1]["prevHash"] == log[0]["entryHash"]
    assert log[0]["actorId"] == "admin" and log[1]["actorType"] == "api_key"
    assert {e["workspaceId"] for e in log} == {a}
    verdict = (await api.post("/api/audit/verify", headers=key_a)).json()
    assert verdict == {
        "valid": True,
        "eventCount": 4,
        "firstSequence": 1,
        "lastSequence": 4,
        "brokenAt": None,
    }
    # A standard JOSE library reads the published key and checks a signature with it.
    [jwk] = (await jwks_of(api, a))["keys"]
    public = jwt.PyJWK(jwk).key
    public.verify(audit_chain.unb64url(log[0]["signature"]), audit_chain.signed_digest(log[0]))
    # The default organisation's webhooks are recorded in its own log.
    await post_linear(api, linear_body("created", "lin-au", clock.now_ms()))
    await settle(api)
    types = [e["eventType"] for e in await entries(api, ADMIN)]
    assert types == ["webhook.ingest", "session.created", "webhook.processed"]
    stream = (await api.get("/api/audit/events", headers=ADMIN, params={"limit": 2})).json()
    assert [e["type"] for e in stream["events"]] == types[:2]
    assert stream["events"][0]["hash"].startswith("sha256:")
    rest = await api.get(
        "/api/audit/events", headers=ADMIN, params={"cursor": stream["nextCursor"]}
    )
    assert [e["type"] for e in rest.json()["events"]] == types[2:]


async def test_an_organisation_reads_its_own_log_only(api: httpx.AsyncClient) -> None:
    a, b = await new_org(api, "a"), await new_org(api, "b")
    key_a, key_b = await key(api, "a"), await key(api, "b")
    await queue(api, key_a)
    assert all(e["workspaceId"] == b for e in await entries(api, key_b))
    assert len(await entries(api, key_b)) == 1  # B's own key.minted only
    for path, params in (
        ("/api/audit", {"workspaceId": a}),
        ("/api/audit", {"workspaceId": "a"}),
        ("/api/audit/events", {"orgId": a}),
    ):
        refused = await api.get(path, headers=key_b, params=params)
        assert refused.status_code == 403, (path, params)
    verify = await api.post("/api/audit/verify", headers=key_b, json={"workspaceId": a})
    assert verify.status_code == 403
    assert (await api.get("/api/audit")).status_code == 401
    # A key of some projects only, or without audit:read, reads nothing.
    narrow = (await mint(api, "a", projects=["web"], scopes=["sessions:read"])).json()
    narrow_key = {"Authorization": f"Bearer {narrow['key']['fullKey']}"}
    assert (await api.get("/api/audit", headers=narrow_key)).status_code == 403
    reader = (await mint(api, "a", scopes=["sessions:read"])).json()
    no_scope = {"Authorization": f"Bearer {reader['key']['fullKey']}"}
    assert (await api.get("/api/audit", headers=no_scope)).status_code == 403
    # The admin key names the organisation.
    assert {e["workspaceId"] for e in await entries(api, ADMIN, workspaceId="a")} == {a}


async def test_the_jwks_is_public_cached_and_leaks_nothing(api: httpx.AsyncClient) -> None:
    a = await new_org(api, "a")
    reply = await api.get(f"/.well-known/audit-keys/{a}.json")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/jwk-set+json"
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "max-age=300" in reply.headers["cache-control"]
    [jwk] = reply.json()["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert jwk["rensei:workspace_id"] == a and jwk["rensei:revoked_at"] is None
    again = await api.get(
        f"/.well-known/audit-keys/{a}", headers={"if-none-match": reply.headers["etag"]}
    )
    assert again.status_code == 304
    unknown = await api.get("/.well-known/audit-keys/org_nobody")
    assert unknown.status_code == 200 and unknown.json() == {"keys": []}
    default = (await jwks_of(api, "org_default"))["keys"]
    assert default[0]["x"] != jwk["x"]  # each organisation signs with its own key


async def _tamper(api: httpx.AsyncClient, statements: list[str]) -> None:
    async with services(api).dispatcher.store.db.begin() as conn:
        for statement in statements:
            await conn.execute(sa.text(statement))


TAMPERING = {
    "modified": (
        ["UPDATE audit_events SET payload = '{\"forged\": 1}' WHERE sequence_number = 3"],
        3,
    ),
    "removed": (["DELETE FROM audit_events WHERE sequence_number = 2"], 3),
    "reordered": (
        [
            "UPDATE audit_events SET sequence_number = -2 WHERE sequence_number = 2",
            "UPDATE audit_events SET sequence_number = 2 WHERE sequence_number = 3",
            "UPDATE audit_events SET sequence_number = 3 WHERE sequence_number = -2",
        ],
        2,
    ),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
async def test_a_tampered_log_fails_verification(
    api: httpx.AsyncClient, tmp_path: Path, how: str
) -> None:
    a = await new_org(api, "a")
    key_a = await key(api, "a")
    for _ in range(3):
        await queue(api, key_a)
    exported = tmp_path / "clean.jsonl"
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(await jwks_of(api, a)))
    _write(exported, await entries(api, key_a))
    assert _cli_verify(exported, jwks_file).exit_code == 0
    statements, first_broken = TAMPERING[how]
    await _tamper(api, [s + f" AND org_id = '{a}'" for s in statements])
    verdict = (await api.post("/api/audit/verify", headers=key_a)).json()
    assert verdict["valid"] is False
    assert verdict["brokenAt"]["sequenceNumber"] == first_broken
    tampered = tmp_path / "tampered.jsonl"
    _write(tampered, await entries(api, key_a))
    result = _cli_verify(tampered, jwks_file)
    assert result.exit_code == 1 and f"broken at sequence {first_broken}" in result.output


async def test_a_reordered_export_fails_and_a_forged_resign_needs_the_key(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Edits to the exported file itself: reordered lines, and a modified entry whose hash
    was recomputed (a forger without the signing key cannot re-sign it)."""
    a = await new_org(api, "a")
    key_a = await key(api, "a")
    await queue(api, key_a)
    await queue(api, key_a)
    log = await entries(api, key_a)
    keys = audit_chain.public_keys(await jwks_of(api, a))
    assert audit_chain.verify(log, keys).valid
    swapped = [log[0], log[2], log[1]]
    assert audit_chain.verify(swapped, keys).broken_at.sequence_number == 3  # type: ignore[union-attr]
    forged = dict(log[2], actorId="someone-else")
    event = {k: v for k, v in forged.items() if k not in audit_chain.CHAIN_FIELDS}
    forged["entryHash"] = audit_chain.entry_hash(event, forged["prevHash"])
    verdict = audit_chain.verify([log[0], log[1], forged], keys)
    assert verdict.broken_at is not None and verdict.broken_at.reason == "signature does not verify"


def _write(path: Path, log: list[Any]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in log))


def _cli_verify(log: Path, jwks: Path) -> Any:
    return CliRunner().invoke(cli, ["audit", "verify", str(log), "--jwks", str(jwks)])


async def test_a_rotated_key_keeps_history_verifiable(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    a = await new_org(api, "a")
    key_a = await key(api, "a")
    rotate(services(api).audit.keys.path, 1_700_000_000_000)
    await queue(api, key_a)
    log = await entries(api, key_a)
    assert log[0]["signingKeyId"] != log[1]["signingKeyId"]
    jwks = (await jwks_of(api, a))["keys"]
    assert len(jwks) == 2 and jwks[1]["rensei:revoked_at"] is not None
    assert (await api.post("/api/audit/verify", headers=key_a)).json()["valid"] is True


async def test_concurrent_writers_never_fork_the_chain(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    """Concurrent appends to one organisation's chain: on PostgreSQL from two stores (two
    processes' worth of connection pools), on SQLite from one (one server process owns a
    SQLite file; its transactions take turns on one connection)."""
    keys = AuditKeys(tmp_path / "audit-keys.json")
    keys.load_or_create(clock.now_ms())
    count = 2 if backend.name == "postgres" else 1
    stores = [await open_store(backend.url, schema=backend.schema) for _ in range(count)]
    try:
        logs = [AuditLog(store, clock, keys) for store in stores]
        writes = [
            logs[i % count].append("org_x", "test.write", Who(f"w{i}", "test"), ("t", str(i)), {})
            for i in range(60)
        ]
        await asyncio.gather(*writes)
        exported = await logs[0].export("org_x")
        assert [e["sequenceNumber"] for e in exported] == list(range(1, 61))
        assert len({e["entityId"] for e in exported}) == 60
        assert (await logs[-1].verify("org_x")).valid
    finally:
        for store in stores:
            await store.close()


async def test_workers_registered_and_declared_dead_are_recorded(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    worker_id = await register(api)
    clock.advance(3600)
    await services(api).dispatcher.reap()
    log = await entries(api, ADMIN, entityId=worker_id)
    assert [e["eventType"] for e in log] == ["worker.registered", "worker.declared_dead"]
    assert log[0]["actorId"] == "worker-key" and log[1]["actorType"] == "system"
