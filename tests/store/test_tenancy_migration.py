"""Migration 0007 moves every registration token into api_keys, as a worker registration key
of the organisation its free-text `org` named (made if need be), and nothing is lost: the
token's secret still works, its revocation stays."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from shopfloor.service.auth import WORKER_SCOPES, digest
from shopfloor.store import open_store
from shopfloor.store.sql import _MIGRATIONS, SqlStore
from shopfloor.store.tenancy_records import DEFAULT_ORG, REGISTRATION_KEY
from tests.conftest import Backend

BEFORE = "0006qm_managed_turn_id"


def upgrade_to(revision: str) -> Any:
    def run(conn: sa.Connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", _MIGRATIONS)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    return run


async def test_registration_tokens_become_keys_of_their_organisation(backend: Backend) -> None:
    store = await open_store(backend.url, schema=backend.schema, migrate=False)
    assert isinstance(store, SqlStore)
    try:
        async with store.db.begin() as conn:
            if backend.schema:
                await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{backend.schema}"'))
            await conn.run_sync(upgrade_to(BEFORE))
        async with store.db.begin() as conn:
            rows = [
                ("reg_a", "rsp", digest("rsp_live_a"), "web", "Acme Corp", "ci", 1, None),
                ("reg_b", "rsk", digest("rsk_live_b"), None, None, None, 2, 9),
            ]
            for row in rows:
                await conn.execute(
                    sa.text(
                        "INSERT INTO registration_tokens (id, kind, token_hash, project, org, "
                        "label, created_at, revoked_at) VALUES (:i, :k, :h, :p, :o, :l, :c, :r)"
                    ),
                    dict(zip("ikhpolcr", row, strict=True)),
                )
        await store.migrate()
        acme = await store.get_org("acme-corp")
        assert acme is not None and acme.name == "Acme Corp"
        a = await store.find_api_key(digest("rsp_live_a"))
        assert a is not None
        assert (a.id, a.org_id, a.key_type, a.kind) == ("reg_a", acme.id, REGISTRATION_KEY, "rsp")
        assert (a.projects, a.scopes, a.name, a.revoked_at) == (
            ["web"],
            list(WORKER_SCOPES),
            "ci",
            None,
        )
        b = await store.get_api_key("reg_b")
        assert b is not None and (b.org_id, b.projects, b.revoked_at) == (DEFAULT_ORG, None, 9)
        assert await store.revoked_credential_ids() == {"reg_b"}
    finally:
        await store.close()


async def test_agents_and_environment_sessions_take_their_environments_organisation(
    backend: Backend,
) -> None:
    """Migration 0009tn: an agent made with a key limited to an environment, and a session
    queued in an environment, take that environment's organisation; the rest stay default."""
    store = await open_store(backend.url, schema=backend.schema, migrate=False)
    assert isinstance(store, SqlStore)
    try:
        async with store.db.begin() as conn:
            if backend.schema:
                await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{backend.schema}"'))
            await conn.run_sync(upgrade_to("0008pl_daemon_mutations"))
        async with store.db.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO orgs (id, slug, name, created_at) VALUES ('org_b', 'b', 'B', 1)"
                )
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO projects (id, kind, name, config, metadata, created_at, "
                    "updated_at, org_id) VALUES ('env_b', 'environment', 'e', '{}', '{}', 1, 1, "
                    "'org_b')"
                )
            )
            for agent, project in (("agent_b", "env_b"), ("agent_d", None)):
                await conn.execute(
                    sa.text(
                        "INSERT INTO agents (id, project, version, created_at, updated_at) "
                        "VALUES (:i, :p, 1, 1, 1)"
                    ),
                    {"i": agent, "p": project},
                )
            for session, queue in (("s_b", "env_b"), ("s_d", "agentfactory")):
                await conn.execute(
                    sa.text(
                        "INSERT INTO sessions (id, queue, status, priority, queued_at, "
                        "created_at, updated_at, extra) VALUES (:i, :q, 'pending', 3, 1, 1, 1, "
                        "'{}')"
                    ),
                    {"i": session, "q": queue},
                )
        await store.migrate()
        async with store.db.connect() as conn:
            agents = dict((await conn.execute(sa.text("SELECT id, org_id FROM agents"))).all())
            sessions = dict((await conn.execute(sa.text("SELECT id, org_id FROM sessions"))).all())
        assert agents == {"agent_b": "org_b", "agent_d": DEFAULT_ORG}
        assert sessions == {"s_b": "org_b", "s_d": DEFAULT_ORG}
    finally:
        await store.close()


async def test_issue_locks_take_their_sessions_organisation(backend: Backend) -> None:
    """Migration 0010ik: an issue lock takes its holder session's organisation (the default
    one if the holder is gone), and issue ids are then unique per organisation only."""
    store = await open_store(backend.url, schema=backend.schema, migrate=False)
    assert isinstance(store, SqlStore)
    try:
        async with store.db.begin() as conn:
            if backend.schema:
                await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{backend.schema}"'))
            await conn.run_sync(upgrade_to("0009tn_org_scoped_managed"))
        async with store.db.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO sessions (id, queue, status, priority, queued_at, created_at, "
                    "updated_at, extra, org_id) VALUES ('s_b', 'q', 'running', 3, 1, 1, 1, '{}', "
                    "'org_b')"
                )
            )
            for issue, holder in (("ENG-1", "s_b"), ("ENG-2", "s_gone")):
                await conn.execute(
                    sa.text(
                        "INSERT INTO issue_locks (issue_id, session_id, locked_at, expires_at) "
                        "VALUES (:i, :s, 1, 9)"
                    ),
                    {"i": issue, "s": holder},
                )
            await conn.execute(
                sa.text(
                    "INSERT INTO issues (id, identifier, labels, org_id, created_at, updated_at) "
                    "VALUES ('ENG-1', 'ENG-1', '[]', 'org_b', 1, 1)"
                )
            )
        await store.migrate()
        async with store.db.begin() as conn:
            locks = (await conn.execute(sa.text("SELECT issue_id, org_id FROM issue_locks"))).all()
            assert sorted(locks) == [("ENG-1", "org_b"), ("ENG-2", DEFAULT_ORG)]
            # The same ids in another organisation are other rows now.
            await conn.execute(
                sa.text(
                    "INSERT INTO issue_locks (org_id, issue_id, session_id, locked_at, "
                    "expires_at) VALUES ('org_c', 'ENG-1', 's_c', 1, 9)"
                )
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO issues (id, identifier, labels, org_id, created_at, updated_at) "
                    "VALUES ('ENG-1', 'ENG-1', '[]', 'org_c', 1, 1)"
                )
            )
        lock = await store.get_issue_lock("org_b", "ENG-1")
        assert lock is not None and lock.session_id == "s_b"
        issue = await store.find_issue("org_c", "ENG-1")
        assert issue is not None and issue.org_id == "org_c"
    finally:
        await store.close()
