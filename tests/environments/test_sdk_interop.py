"""The real `anthropic` SDK (pinned in the test extra) against a real `shopfloor serve`
process: what a worker built on `client.beta.environments.work` or
`anthropic.lib.environments.iter_work` does must work unchanged against shopfloor."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx
import pytest
from anthropic.lib.environments import iter_work

from tests.conftest import ADMIN_KEY
from tests.environments.conftest import Server


def sdk(server: Server, **kw: object) -> anthropic.Anthropic:
    # The SDK appends /v1/environments… to the base URL itself.
    return anthropic.Anthropic(base_url=server.url, max_retries=0, **kw)  # type: ignore[arg-type]


def admin(server: Server) -> anthropic.Anthropic:
    return sdk(server, api_key=ADMIN_KEY)


def enqueue(server: Server, env_id: str, n: int = 1) -> list[str]:
    ids = []
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        for i in range(n):
            r = c.post("/api/v1/sessions", json={"prompt": f"task {i}", "environmentId": env_id})
            assert r.status_code == 201, r.text
            ids.append(r.json()["sessionId"])
    return ids


def test_environments_through_the_sdk(server: Server) -> None:
    envs = admin(server).beta.environments
    created = [envs.create(name=f"shop{i}", config={"type": "self_hosted"}) for i in range(3)]
    env = created[0]
    assert env.type == "environment" and env.config.type == "self_hosted"
    assert envs.retrieve(env.id).name == "shop0"
    updated = envs.update(env.id, metadata={"team": "core", "x": "1"})
    assert updated.metadata == {"team": "core", "x": "1"}
    assert envs.update(env.id, metadata={"x": None}).metadata == {"team": "core"}
    # Auto-pagination follows next_page via ?page= until it is null.
    assert [e.id for e in envs.list(limit=1)] == [e.id for e in created]
    assert envs.archive(env.id).archived_at is not None
    assert env.id not in [e.id for e in envs.list()]
    assert env.id in [e.id for e in envs.list(include_archived=True)]
    deleted = envs.delete(env.id)
    assert (deleted.id, deleted.type) == (env.id, "environment_deleted")
    with pytest.raises(anthropic.NotFoundError) as caught:
        envs.retrieve(env.id)
    assert caught.value.type == "not_found_error"
    assert caught.value.error_code == "environment_not_found"  # BetaEnvironmentNotFoundError
    assert caught.value.request_id  # from the request-id header


def test_work_lifecycle_through_the_sdk(server: Server) -> None:
    client = admin(server)
    env = client.beta.environments.create(name="shop", config={"type": "self_hosted"})
    work = client.beta.environments.work
    assert work.poll(env.id, block_ms=1, anthropic_worker_id="w1") is None
    session_id, other = enqueue(server, env.id, 2)

    item = work.poll(env.id, block_ms=999, reclaim_older_than_ms=5000, anthropic_worker_id="w1")
    assert item is not None
    assert (item.state, item.data.type, item.data.id) == ("queued", "session", session_id)
    assert item.id == "work_" + session_id.removeprefix("sess_")
    stats = work.stats(env.id)
    assert (stats.depth, stats.pending, stats.workers_polling) == (1, 1, 1)

    assert work.ack(item.id, environment_id=env.id).state == "starting"
    hb = work.heartbeat(
        item.id,
        environment_id=env.id,
        expected_last_heartbeat="NO_HEARTBEAT",
        desired_ttl_seconds=30,
    )
    assert (hb.state, hb.lease_extended, hb.ttl_seconds) == ("active", True, 30)
    hb2 = work.heartbeat(item.id, environment_id=env.id, expected_last_heartbeat=hb.last_heartbeat)
    assert hb2.last_heartbeat != hb.last_heartbeat
    with pytest.raises(anthropic.PreconditionFailedError) as lost:
        work.heartbeat(item.id, environment_id=env.id, expected_last_heartbeat=hb.last_heartbeat)
    assert lost.value.error_code == "heartbeat_precondition_failed"
    assert lost.value.details.current_state.last_heartbeat == hb2.last_heartbeat  # type: ignore[union-attr]

    updated = work.update(item.id, environment_id=env.id, metadata={"a": "b", "gone": None})
    assert updated.metadata == {"a": "b"}
    got = work.retrieve(item.id, environment_id=env.id)
    assert (got.state, got.metadata, got.secret) == ("active", {"a": "b"}, None)
    assert [w.id for w in work.list(env.id, limit=1)] == [
        item.id,
        "work_" + other.removeprefix("sess_"),
    ]

    assert work.stop(item.id, environment_id=env.id).state == "stopping"
    told = work.heartbeat(
        item.id, environment_id=env.id, expected_last_heartbeat=hb2.last_heartbeat
    )
    assert told.state == "stopping"
    assert work.stop(item.id, environment_id=env.id).state == "stopped"
    assert work.stop(item.id, environment_id=env.id, force=True).state == "stopped"
    with pytest.raises(anthropic.ConflictError) as conflict:
        work.ack(item.id, environment_id=env.id)
    assert conflict.value.type == "invalid_request_error"
    assert conflict.value.response.headers["x-should-retry"] == "false"


def test_iter_work_drains_every_item_exactly_once_across_two_pollers(server: Server) -> None:
    env = admin(server).beta.environments.create(name="drain", config={"type": "self_hosted"})
    sessions = set(enqueue(server, env.id, 20))
    lock = threading.Lock()
    yielded: list[tuple[str, str, str]] = []

    def run(worker: str) -> None:
        # Each poller with its own client, as two worker processes would have.
        work = sdk(server, api_key=ADMIN_KEY).beta.environments.work
        for item in iter_work(work, environment_id=env.id, worker_id=worker, drain=True):
            with lock:
                yielded.append((worker, item.id, item.data.id))
            time.sleep(0.01)  # a little work, so the pollers interleave

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(run, "poller-a"), pool.submit(run, "poller-b")]:
            f.result(timeout=120)

    handed = [sid for _, _, sid in yielded]
    assert sorted(handed) == sorted(sessions)  # all of them, none twice
    assert {w for w, _, _ in yielded} == {"poller-a", "poller-b"}
    work = admin(server).beta.environments.work
    # iter_work's graceful stop after each item ends it (it never heartbeated).
    assert {w.state for w in work.list(env.id)} == {"stopped"}
    assert work.stats(env.id).depth == 0


def test_a_scoped_environment_key_works_the_queue_as_auth_token(server: Server) -> None:
    env = admin(server).beta.environments.create(name="keyed", config={"type": "self_hosted"})
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        token = c.post("/api/v1/registration-tokens", json={"project": env.id}).json()["token"]
    (sid,) = enqueue(server, env.id)
    worker = sdk(server, auth_token=token).beta.environments.work
    item = worker.poll(env.id, anthropic_worker_id="w")
    assert item is not None and item.data.id == sid
    assert worker.ack(item.id, environment_id=env.id).state == "starting"
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk(server, auth_token=token).beta.environments.list()
    with pytest.raises(anthropic.AuthenticationError):
        sdk(server, auth_token="wrong").beta.environments.work.stats(env.id)


def test_a_held_poll_wakes_when_work_arrives(server: Server) -> None:
    """Documented bound: an enqueue during a held poll returns it well under block_ms."""
    env = admin(server).beta.environments.create(name="wake", config={"type": "self_hosted"})
    work = admin(server).beta.environments.work
    work.poll(env.id, block_ms=1)  # warm the connection
    result: dict[str, object] = {}

    def held() -> None:
        started = time.monotonic()
        result["item"] = work.poll(env.id, block_ms=999, anthropic_worker_id="sleepy")
        result["returned"] = time.monotonic()
        result["started"] = started

    thread = threading.Thread(target=held)
    thread.start()
    time.sleep(0.15)  # the poll is now held open on an empty queue
    enqueued_at = time.monotonic()
    (sid,) = enqueue(server, env.id)
    thread.join(timeout=5)
    item = result["item"]
    assert item is not None and item.data.id == sid  # type: ignore[attr-defined]
    woke_after = float(result["returned"]) - enqueued_at  # type: ignore[arg-type]
    held_for = float(result["returned"]) - float(result["started"])  # type: ignore[arg-type]
    # Without the wake-up the poll would hold on to its full 999 ms; the bounds leave room
    # for the enqueue request itself on a busy machine.
    assert woke_after < 0.6, woke_after
    assert held_for < 0.8, held_for


async def test_the_async_poller_with_an_environment_key(server: Server) -> None:
    """`AsyncWork.poller(environment_key=…)` sends the key as its Bearer on poll, ack, stop."""
    client = anthropic.AsyncAnthropic(api_key=ADMIN_KEY, base_url=server.url, max_retries=0)
    env = await client.beta.environments.create(name="async", config={"type": "self_hosted"})
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as c:
        minted = await c.post("/api/v1/registration-tokens", json={"project": env.id})
    sessions = set(enqueue(server, env.id, 3))
    seen = [
        item.data.id
        async for item in client.beta.environments.work.poller(
            environment_id=env.id, environment_key=minted.json()["token"], drain=True
        )
    ]
    assert sorted(seen) == sorted(sessions)
    states = [w.state async for w in client.beta.environments.work.list(env.id)]
    assert states == ["stopped"] * 3
