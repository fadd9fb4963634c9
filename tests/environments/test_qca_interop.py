"""Qoder's official Python SDK, `qca-sdk` (pinned in the test extra), against a real
`shopfloor serve` process: `qca.Managed` / `qca.AsyncManaged` with
`base_url=<server>/api/v1/cloud`, its `environments` and `environments.work` resources.

Every assertion reads what the SDK itself parsed: its typed models (parsed with the SDK's own
strict validation, and checked to have received every field the model declares) and its
exception classes. A change in shopfloor's wire shape, status codes or error envelope fails
here the way it would fail a Qoder user's worker."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import qca
from pydantic import BaseModel
from qca.managed.types import (
    Environment,
    SelfHostedWork,
    SelfHostedWorkHeartbeatResponse,
    SelfHostedWorkQueueStats,
)

from tests.conftest import ADMIN_KEY
from tests.environments.conftest import Server

SELF_HOSTED: Any = {"type": "self_hosted"}


def base_url(server: Server) -> str:
    return server.url + "/api/v1/cloud"


def managed(server: Server, token: str = ADMIN_KEY) -> qca.Managed:
    # The SDK's strict mode validates each response against its models (its default builds
    # them without checking); no retries, so every status reaches the test as it was sent.
    return qca.Managed(
        pat=token, base_url=base_url(server), max_retries=0, _strict_response_validation=True
    )


def async_managed(server: Server, token: str = ADMIN_KEY) -> qca.AsyncManaged:
    return qca.AsyncManaged(
        pat=token, base_url=base_url(server), max_retries=0, _strict_response_validation=True
    )


def operator(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})


def enqueue(server: Server, env_id: str, n: int = 1, **fields: Any) -> list[str]:
    """Queue `n` sessions in the environment through the operator API; their session ids."""
    with operator(server) as c:
        ids = []
        for i in range(n):
            body = {"prompt": f"task {i}", "environmentId": env_id, **fields}
            r = c.post("/api/v1/sessions", json=body)
            assert r.status_code == 201, r.text
            ids.append(r.json()["sessionId"])
    return ids


def mint(server: Server, project: str | None = None) -> dict[str, Any]:
    with operator(server) as c:
        r = c.post(
            "/api/v1/registration-tokens", json={} if project is None else {"project": project}
        )
        assert r.status_code == 201, r.text
        minted: dict[str, Any] = r.json()
    return minted


def work_id(session_id: str) -> str:
    return "work_" + session_id.removeprefix("sess_")


def as_worker(worker: str) -> dict[str, str]:
    # qca's ack() and stop() take no worker id argument; the header is how a worker names itself.
    return {"Worker-ID": worker}


def complete(model: BaseModel) -> None:
    """Every field the SDK's model declares came over the wire (none left to its defaults)."""
    missing = set(type(model).model_fields) - model.model_fields_set
    assert not missing, f"{type(model).__name__} lacks {sorted(missing)}"


def utc(value: str | None) -> datetime:
    """An RFC 3339 UTC timestamp, as the SDK hands it over (a string)."""
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


def check_work(item: SelfHostedWork | None, env_id: str, session_id: str) -> SelfHostedWork:
    assert isinstance(item, SelfHostedWork)
    complete(item)
    assert (item.type, item.id, item.environment_id) == ("work", work_id(session_id), env_id)
    assert item.data is not None
    assert (item.data.type, item.data.id) == ("session", session_id)
    assert item.secret is None
    utc(item.created_at)
    return item


def check_error(
    exc: qca.APIStatusError, status: int, error_type: str, names: str | None = None
) -> None:
    """The SDK parsed Qoder's envelope: status, error.type, error.message and request_id."""
    assert exc.status_code == status
    assert exc.type == error_type
    assert isinstance(exc.body, dict) and exc.body["type"] == "error"
    assert exc.request_id and exc.request_id == exc.body["request_id"]
    assert exc.message == f"Error code: {status} - {exc.body['error']['message']}"
    if names is not None:
        assert names in exc.body["error"]["message"], exc.body


@pytest.fixture
def client(server: Server) -> Iterator[qca.Managed]:
    with managed(server) as c:
        yield c


# -- environments --


def test_environments_crud_archive_and_metadata(client: qca.Managed) -> None:
    envs = client.environments
    env = envs.create(
        name="build-farm",
        description="the farm",
        config=SELF_HOSTED,
        metadata={"team": "core", "tier": "1"},
        scope="account",
    )
    assert isinstance(env, Environment)
    complete(env)
    assert env.id is not None and env.id.startswith("env_") and len(env.id) == 36
    assert (env.type, env.name, env.description, env.scope) == (
        "environment",
        "build-farm",
        "the farm",
        "account",
    )
    assert env.config is not None and env.config.type == "self_hosted"
    assert env.metadata == {"team": "core", "tier": "1"}
    assert env.archived_at is None and utc(env.created_at) == utc(env.updated_at)
    # Qoder's documented status fields, which the SDK keeps as extras.
    assert env.to_dict()["status"] == "ready" and env.to_dict()["archived"] is False

    assert envs.retrieve(env.id).model_dump() == env.model_dump()
    updated = envs.update(
        env.id, name="farm", description=None, metadata={"tier": None, "zone": "eu"}
    )
    complete(updated)
    assert (updated.name, updated.description, updated.metadata) == (
        "farm",
        None,
        {"team": "core", "zone": "eu"},
    )
    assert utc(updated.updated_at) > utc(env.updated_at)
    assert utc(updated.created_at) == utc(env.created_at)

    archived = envs.archive(env.id)
    complete(archived)
    assert archived.archived_at is not None and utc(archived.archived_at) >= utc(env.created_at)
    assert archived.to_dict()["status"] == "archived" and archived.to_dict()["archived"] is True
    assert (
        envs.archive(env.id).model_dump() == archived.model_dump()
    )  # archiving again changes nothing
    with pytest.raises(qca.BadRequestError) as refused:
        envs.update(env.id, name="again")
    check_error(refused.value, 400, "invalid_request_error")
    assert refused.value.body["error"]["details"] == {"error_code": "environment_archived"}
    assert envs.retrieve(env.id).name == "farm"  # the refused update changed nothing

    deleted = envs.delete(env.id)
    complete(deleted)
    assert (deleted.id, deleted.type) == (env.id, "environment_deleted")
    with pytest.raises(qca.NotFoundError) as gone:
        envs.retrieve(env.id)
    check_error(gone.value, 404, "not_found_error", env.id)
    assert gone.value.body["error"]["details"] == {"error_code": "environment_not_found"}
    with pytest.raises(qca.NotFoundError):
        envs.delete(env.id)


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"name": ""}, "name"),
        ({"name": "x", "config": {"type": "cloud"}}, "config.type"),
        ({"name": "x", "config": {"type": "self_hosted", "setup_script": "make"}}, "config"),
        ({"name": "x", "metadata": {"k": 1}}, "metadata.k"),
        ({"name": "x", "scope": "galaxy"}, "scope"),
    ],
)
def test_environment_create_rejects_bad_input_naming_the_field(
    client: qca.Managed, fields: dict[str, Any], names: str
) -> None:
    before = [e.id for e in client.environments.list(include_archived=True)]
    with pytest.raises(qca.BadRequestError) as caught:
        client.environments.create(**fields)
    check_error(caught.value, 400, "invalid_request_error", names)
    assert [e.id for e in client.environments.list(include_archived=True)] == before


def test_environment_lists_page_with_next_page(client: qca.Managed) -> None:
    envs = client.environments
    mine = [envs.create(name=f"page{i}", config=SELF_HOSTED).id for i in range(3)]
    first = envs.list(limit=1)
    assert len(first.data) == 1 and first.has_more is True
    assert first.next_page == first.last_id == first.first_id == first.data[0].id
    complete(first.data[0])
    # Auto-pagination re-sends the request with page=<next_page> until it is null.
    every = [e.id for e in envs.list(limit=1)]
    assert len(every) == len(set(every)) and every == sorted(every)
    assert [i for i in every if i in mine] == mine
    pages = list(envs.list(limit=2).iter_pages())
    assert [e.id for p in pages for e in p.data] == every
    assert pages[-1].has_more is False and pages[-1].next_page is None
    assert all(p.has_more for p in pages[:-1])

    envs.archive(mine[1])
    assert mine[1] not in [e.id for e in envs.list()]
    assert mine[1] in [e.id for e in envs.list(include_archived=True, limit=100)]


def test_environment_list_filters_by_creation_time(client: qca.Managed) -> None:
    """`list(created_at_gte=…, created_at_lte=…)`: qca sends the datetimes as
    `created_at[gte]` / `created_at[lte]` (isoformat), both bounds inclusive."""
    envs = client.environments
    made = []
    for i in range(3):
        made.append(envs.create(name=f"dated{i}", config=SELF_HOSTED))
        time.sleep(0.005)  # distinct creation milliseconds
    at = [utc(e.created_at) for e in made]
    ids = [e.id for e in made]

    assert [e.id for e in envs.list(created_at_gte=at[1])] == ids[1:]
    window = envs.list(created_at_gte=at[0], created_at_lte=at[1], limit=1)
    assert [e.id for e in window] == ids[:2]  # every page keeps the filter
    assert [e.id for e in envs.list(created_at_gte=at[1], created_at_lte=at[1])] == ids[1:2]
    assert ids[2] not in [e.id for e in envs.list(created_at_lte=at[1], limit=100)]
    local = at[1].astimezone(timezone(timedelta(hours=-7)))  # the same instant, another offset
    assert [e.id for e in envs.list(created_at_gte=local)] == ids[1:]
    # A naive datetime names no instant: refused, naming the parameter.
    with pytest.raises(qca.BadRequestError) as naive:
        envs.list(created_at_gte=at[1].replace(tzinfo=None))
    check_error(naive.value, 400, "invalid_request_error", "created_at[gte]")


def test_delete_refuses_an_environment_with_unfinished_work(
    server: Server, client: qca.Managed
) -> None:
    env = client.environments.create(name="busy", config=SELF_HOSTED)
    assert env.id is not None
    (sid,) = enqueue(server, env.id)
    with pytest.raises(qca.ConflictError) as caught:
        client.environments.delete(env.id)
    check_error(caught.value, 409, "invalid_request_error", "unfinished")
    assert client.environments.retrieve(env.id).id == env.id
    client.environments.work.stop(work_id(sid), environment_id=env.id, force=True)
    assert client.environments.delete(env.id).type == "environment_deleted"


# -- the work lifecycle, sync --


def test_work_lifecycle(server: Server, client: qca.Managed) -> None:
    env = client.environments.create(name="lifecycle", config=SELF_HOSTED)
    assert env.id is not None
    work = client.environments.work
    assert work.poll(env.id, block_ms=1, worker_id="w1") is None  # 200 with a JSON null
    sid, second, third = enqueue(server, env.id, 3, metadata={"repo": "shop", "pr": "7"})

    item = check_work(
        work.poll(env.id, block_ms=999, reclaim_older_than_ms=5000, worker_id="w1"), env.id, sid
    )
    assert item.state == "queued" and item.metadata == {"repo": "shop", "pr": "7"}
    assert (
        item.acknowledged_at,
        item.started_at,
        item.latest_heartbeat_at,
        item.stop_requested_at,
        item.stopped_at,
    ) == (None, None, None, None, None)

    stats = work.stats(env.id)
    assert isinstance(stats, SelfHostedWorkQueueStats)
    complete(stats)
    assert (stats.type, stats.depth, stats.pending, stats.workers_polling) == (
        "work_queue_stats",
        2,
        1,
        1,
    )
    assert utc(stats.oldest_queued_at) == utc(item.created_at)

    acked = check_work(
        work.ack(item.id or "", environment_id=env.id, extra_headers=as_worker("w1")), env.id, sid
    )
    assert acked.state == "starting" and acked.acknowledged_at is not None
    assert utc(acked.acknowledged_at) >= utc(acked.created_at)
    again = work.ack(acked.id or "", environment_id=env.id)  # harmless on a starting item
    assert (again.state, again.acknowledged_at) == ("starting", acked.acknowledged_at)
    assert work.stats(env.id).pending == 0

    hb = work.heartbeat(
        acked.id or "",
        environment_id=env.id,
        expected_last_heartbeat="NO_HEARTBEAT",
        desired_ttl_seconds=30,
    )
    assert isinstance(hb, SelfHostedWorkHeartbeatResponse)
    complete(hb)
    assert (hb.type, hb.state, hb.lease_extended, hb.ttl_seconds) == (
        "work_heartbeat",
        "active",
        True,
        30,
    )
    # desired_ttl_seconds is clamped to 10-600 s.
    short = work.heartbeat(
        acked.id or "",
        environment_id=env.id,
        expected_last_heartbeat=hb.last_heartbeat,
        desired_ttl_seconds=1,
    )
    assert (short.ttl_seconds, short.state) == (10, "active")
    assert utc(short.last_heartbeat) > utc(hb.last_heartbeat)
    long = work.heartbeat(
        acked.id or "",
        environment_id=env.id,
        expected_last_heartbeat=short.last_heartbeat,
        desired_ttl_seconds=86_400,
    )
    assert long.ttl_seconds == 600
    unconditional = work.heartbeat(acked.id or "", environment_id=env.id)
    assert unconditional.ttl_seconds == 600  # the lease keeps its TTL when none is asked

    # A stale expected_last_heartbeat: another worker took over. 412 has no class of its own
    # in qca, so the SDK raises its base APIStatusError.
    with pytest.raises(qca.APIStatusError) as lost:
        work.heartbeat(
            acked.id or "", environment_id=env.id, expected_last_heartbeat=hb.last_heartbeat
        )
    assert type(lost.value) is qca.APIStatusError
    check_error(lost.value, 412, "precondition_failed_error", "expected_last_heartbeat")
    details = lost.value.body["error"]["details"]
    assert details["error_code"] == "heartbeat_precondition_failed"
    assert details["current_state"]["last_heartbeat"] == unconditional.last_heartbeat
    assert details["current_state"]["state"] == "active"

    got = check_work(work.retrieve(acked.id or "", environment_id=env.id), env.id, sid)
    assert got.state == "active" and got.started_at is not None
    assert got.latest_heartbeat_at == unconditional.last_heartbeat
    assert got.acknowledged_at == acked.acknowledged_at

    updated = work.update(
        got.id or "", environment_id=env.id, metadata={"pr": None, "status": "green"}
    )
    assert updated.metadata == {"repo": "shop", "status": "green"}
    unchanged = work.update(got.id or "", environment_id=env.id, metadata={})
    assert unchanged.metadata == updated.metadata

    listed = work.list(env.id, limit=1)
    assert [w.id for w in listed.data] == [item.id] and listed.has_more is True
    assert listed.next_page == item.id
    assert [w.id for w in work.list(env.id, limit=1)] == [work_id(s) for s in (sid, second, third)]
    assert [w.id for w in work.list(env.id, after_id=work_id(sid)).data] == [
        work_id(second),
        work_id(third),
    ]
    before = work.list(env.id, before_id=work_id(third), limit=1)
    assert [w.id for w in before.data] == [work_id(second)] and before.next_page is None
    assert [w.state for w in work.list(env.id)] == ["active", "queued", "queued"]

    # Graceful stop of an active item: stopping, seen on its next heartbeat, then stopped.
    stopping = work.stop(got.id or "", environment_id=env.id)
    assert stopping.state == "stopping" and stopping.stop_requested_at is not None
    assert stopping.stopped_at is None
    told = work.heartbeat(
        got.id or "", environment_id=env.id, expected_last_heartbeat=unconditional.last_heartbeat
    )
    assert told.state == "stopping"
    stopped = work.stop(got.id or "", environment_id=env.id)
    assert stopped.state == "stopped" and stopped.stopped_at is not None
    assert stopped.stop_requested_at == stopping.stop_requested_at
    assert (
        work.stop(got.id or "", environment_id=env.id, force=True).model_dump()
        == stopped.model_dump()
    )

    with pytest.raises(qca.ConflictError) as late_ack:
        work.ack(got.id or "", environment_id=env.id)
    check_error(late_ack.value, 409, "invalid_request_error", "stopped")
    assert late_ack.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(qca.ConflictError) as late_beat:
        work.heartbeat(got.id or "", environment_id=env.id)
    check_error(late_beat.value, 409, "invalid_request_error", "stopped")
    assert work.retrieve(got.id or "", environment_id=env.id).model_dump() == stopped.model_dump()


# -- poll parameters, redelivery and ack identity --


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"block_ms": 0}, "block_ms"),
        ({"block_ms": 1000}, "block_ms"),
        ({"reclaim_older_than_ms": -1}, "reclaim_older_than_ms"),
        ({"extra_query": {"block_ms": "soon"}}, "block_ms"),
    ],
)
def test_poll_rejects_bad_parameters_naming_them(
    server: Server, client: qca.Managed, params: dict[str, Any], names: str
) -> None:
    env = client.environments.create(name="badpoll", config=SELF_HOSTED)
    assert env.id is not None
    (sid,) = enqueue(server, env.id)
    with pytest.raises(qca.BadRequestError) as caught:
        client.environments.work.poll(env.id, worker_id="w1", **params)
    check_error(caught.value, 400, "invalid_request_error", names)
    # The refused poll delivered nothing: the item goes to the next poller at once.
    item = client.environments.work.poll(env.id, worker_id="w2")
    check_work(item, env.id, sid)


def test_redelivery_window_and_ack_identity(server: Server, client: qca.Managed) -> None:
    env = client.environments.create(name="reclaim", config=SELF_HOSTED)
    assert env.id is not None
    work = client.environments.work
    (sid,) = enqueue(server, env.id)
    first = check_work(work.poll(env.id, worker_id="w1"), env.id, sid)
    # Delivered and not acknowledged: nobody else gets it inside the (default 5 s) window...
    assert work.poll(env.id, worker_id="w2") is None
    assert work.poll(env.id, worker_id="w2", reclaim_older_than_ms=60_000) is None
    # ...but a poller that reclaims anything older than 0 ms takes it over.
    taken = check_work(work.poll(env.id, worker_id="w2", reclaim_older_than_ms=0), env.id, sid)
    assert taken.id == first.id and taken.state == "queued"

    # The ack must come from the worker the item was last delivered to.
    with pytest.raises(qca.ConflictError) as conflict:
        work.ack(first.id or "", environment_id=env.id, extra_headers=as_worker("w1"))
    check_error(conflict.value, 409, "invalid_request_error", "another worker")
    assert work.retrieve(first.id or "", environment_id=env.id).state == "queued"
    acked = work.ack(first.id or "", environment_id=env.id, extra_headers=as_worker("w2"))
    assert acked.state == "starting"
    with pytest.raises(qca.ConflictError):
        work.ack(first.id or "", environment_id=env.id, extra_headers=as_worker("w1"))
    # Acked items are no longer in the queue, whatever the reclaim window.
    assert work.poll(env.id, worker_id="w3", reclaim_older_than_ms=0) is None
    stats = work.stats(env.id)
    assert (stats.depth, stats.pending, stats.oldest_queued_at) == (0, 0, None)
    assert stats.workers_polling == 3


def test_a_held_poll_waits_then_wakes_when_work_arrives(
    server: Server, client: qca.Managed
) -> None:
    env = client.environments.create(name="held", config=SELF_HOSTED)
    assert env.id is not None
    work = client.environments.work
    started = time.monotonic()
    assert work.poll(env.id, block_ms=400, worker_id="idle") is None
    # An empty long poll answers in the last fifth of block_ms, never early.
    assert time.monotonic() - started >= 0.3

    result: dict[str, Any] = {}

    def held() -> None:
        result["item"] = work.poll(env.id or "", block_ms=999, worker_id="sleepy")
        result["returned"] = time.monotonic()

    thread = threading.Thread(target=held)
    thread.start()
    time.sleep(0.15)  # the poll is now held open on an empty queue
    enqueued_at = time.monotonic()
    (sid,) = enqueue(server, env.id)
    thread.join(timeout=5)
    check_work(result["item"], env.id, sid)
    # Without the wake-up the poll would hold on to most of its 999 ms.
    assert result["returned"] - enqueued_at < 0.6


# -- stop rules and lifecycle errors --


def test_stop_rules(server: Server, client: qca.Managed) -> None:
    env = client.environments.create(name="stops", config=SELF_HOSTED)
    assert env.id is not None
    work = client.environments.work
    queued, starting, holder, forced = (work_id(s) for s in enqueue(server, env.id, 4))

    # A queued item: a graceful stop is 409 and changes nothing, a forced one cancels it.
    with pytest.raises(qca.ConflictError) as refused:
        work.stop(queued, environment_id=env.id)
    check_error(refused.value, 409, "invalid_request_error", "queued")
    with pytest.raises(qca.ConflictError) as not_acked:
        work.heartbeat(queued, environment_id=env.id, expected_last_heartbeat="NO_HEARTBEAT")
    check_error(not_acked.value, 409, "invalid_request_error", "queued")
    assert work.retrieve(queued, environment_id=env.id).state == "queued"
    cancelled = work.stop(queued, environment_id=env.id, force=True)
    assert cancelled.state == "stopped" and cancelled.acknowledged_at is None
    assert cancelled.stopped_at is not None and cancelled.stop_requested_at is None

    def take(wid: str, worker: str) -> None:
        item = work.poll(env.id or "", worker_id=worker)
        assert item is not None and item.id == wid
        work.ack(wid, environment_id=env.id or "", extra_headers=as_worker(worker))

    # Acknowledged but never heartbeated: nothing can drain, so a graceful stop ends it.
    take(starting, "w1")
    assert work.stop(starting, environment_id=env.id).state == "stopped"

    # The holder itself asking for a graceful stop: nobody else to wait for.
    take(holder, "w2")
    work.heartbeat(holder, environment_id=env.id, expected_last_heartbeat="NO_HEARTBEAT")
    ended = work.stop(holder, environment_id=env.id, extra_headers=as_worker("w2"))
    assert ended.state == "stopped" and ended.stop_requested_at is not None

    # A forced stop of an active item ends it without a drain.
    take(forced, "w3")
    work.heartbeat(forced, environment_id=env.id, expected_last_heartbeat="NO_HEARTBEAT")
    killed = work.stop(forced, environment_id=env.id, force=True)
    assert killed.state == "stopped" and killed.stop_requested_at is None

    with pytest.raises(qca.BadRequestError) as bad_force:
        work.stop(forced, environment_id=env.id, extra_body={"force": "yes"})
    check_error(bad_force.value, 400, "invalid_request_error", "force")
    assert {w.state for w in work.list(env.id)} == {"stopped"}
    assert work.stats(env.id).depth == 0


def test_not_found_and_bad_input_errors(server: Server, client: qca.Managed) -> None:
    env = client.environments.create(name="errors", config=SELF_HOSTED)
    other = client.environments.create(name="elsewhere", config=SELF_HOSTED)
    assert env.id is not None and other.id is not None
    work = client.environments.work
    unknown = "env_" + "0" * 32

    calls = {
        "poll": lambda: work.poll(unknown, block_ms=1),
        "stats": lambda: work.stats(unknown),
        "list": lambda: work.list(unknown),
        "retrieve": lambda: client.environments.retrieve(unknown),
        "update": lambda: client.environments.update(unknown, name="x"),
        "archive": lambda: client.environments.archive(unknown),
    }
    for name, call in calls.items():
        with pytest.raises(qca.NotFoundError) as caught:
            call()
        check_error(caught.value, 404, "not_found_error", unknown)
        assert caught.value.body["error"]["details"] == {"error_code": "environment_not_found"}, (
            name
        )

    # A work item unknown, or living in another environment, is not found either.
    (sid,) = enqueue(server, other.id)
    for wid in (work_id(sid), "work_" + "f" * 32, "nonsense"):
        with pytest.raises(qca.NotFoundError) as missing:
            work.retrieve(wid, environment_id=env.id)
        check_error(missing.value, 404, "not_found_error")
        with pytest.raises(qca.NotFoundError):
            work.ack(wid, environment_id=env.id, extra_headers=as_worker("w1"))
    assert work.retrieve(work_id(sid), environment_id=other.id).state == "queued"

    # x-request-id is echoed as the error's request_id.
    with pytest.raises(qca.NotFoundError) as traced:
        work.stats(unknown, extra_headers={"x-request-id": "trace-qca-1"})
    assert traced.value.request_id == "trace-qca-1"
    assert traced.value.body["request_id"] == "trace-qca-1"

    wid = work_id(sid)
    work.poll(other.id, worker_id="w1")
    work.ack(wid, environment_id=other.id, extra_headers=as_worker("w1"))
    bad_heartbeats = [
        ({"expected_last_heartbeat": "yesterday"}, "expected_last_heartbeat"),
        ({"desired_ttl_seconds": 0}, "desired_ttl_seconds"),
    ]
    for params, names in bad_heartbeats:
        with pytest.raises(qca.BadRequestError) as bad:
            work.heartbeat(wid, environment_id=other.id, **params)
        check_error(bad.value, 400, "invalid_request_error", names)
    assert work.retrieve(wid, environment_id=other.id).state == "starting"
    with pytest.raises(qca.BadRequestError) as bad_meta:
        work.update(wid, environment_id=other.id, metadata={"n": 1})
    check_error(bad_meta.value, 400, "invalid_request_error", "metadata.n")
    with pytest.raises(qca.BadRequestError) as too_many:
        work.update(wid, environment_id=other.id, metadata={f"k{i}": "v" for i in range(17)})
    check_error(too_many.value, 400, "invalid_request_error", "metadata")
    assert work.retrieve(wid, environment_id=other.id).metadata == {}


# -- credentials --


def test_a_registration_token_is_limited_to_its_environment(
    server: Server, client: qca.Managed
) -> None:
    env = client.environments.create(name="scoped", config=SELF_HOSTED)
    other = client.environments.create(name="not-yours", config=SELF_HOSTED)
    assert env.id is not None and other.id is not None
    (sid,) = enqueue(server, env.id)
    (foreign,) = enqueue(server, other.id)
    minted = mint(server, env.id)
    assert minted["token"].startswith("rsp_live_")

    with managed(server, minted["token"]) as scoped:
        work = scoped.environments.work
        item = check_work(work.poll(env.id, block_ms=1, worker_id="w"), env.id, sid)
        assert work.ack(item.id or "", environment_id=env.id).state == "starting"
        hb = work.heartbeat(
            item.id or "", environment_id=env.id, expected_last_heartbeat="NO_HEARTBEAT"
        )
        assert hb.state == "active"
        assert work.update(item.id or "", environment_id=env.id, metadata={"a": "b"}).metadata
        assert [w.id for w in work.list(env.id)] == [item.id]
        assert work.stats(env.id).depth == 0

        denied = {
            "poll": lambda: work.poll(other.id or ""),
            "stats": lambda: work.stats(other.id or ""),
            "list": lambda: work.list(other.id or ""),
            "retrieve": lambda: work.retrieve(work_id(foreign), environment_id=other.id or ""),
            "ack": lambda: work.ack(work_id(foreign), environment_id=other.id or ""),
            "stop": lambda: work.stop(work_id(foreign), environment_id=other.id or "", force=True),
            # Environments themselves are managed with the operator's admin key only.
            "env list": lambda: scoped.environments.list(),
            "env retrieve": lambda: scoped.environments.retrieve(env.id or ""),
            "env create": lambda: scoped.environments.create(name="x", config=SELF_HOSTED),
            "env archive": lambda: scoped.environments.archive(env.id or ""),
        }
        for name, call in denied.items():
            with pytest.raises(qca.PermissionDeniedError) as caught:
                call()
            check_error(caught.value, 403, "permission_error")
            assert caught.value.status_code == 403, name
        assert (
            client.environments.work.retrieve(work_id(foreign), environment_id=other.id).state
            == "queued"
        )

    # An organisation-wide worker key works every environment's queue, but manages none.
    wide = mint(server)
    assert wide["token"].startswith("rsk_live_")
    with managed(server, wide["token"]) as org:
        assert org.environments.work.stats(other.id).depth == 1
        with pytest.raises(qca.PermissionDeniedError):
            org.environments.list()

    # A wrong or revoked token is not authenticated.
    with managed(server, "rsp_live_wrong") as wrong, pytest.raises(qca.AuthenticationError) as bad:
        wrong.environments.work.stats(env.id)
    check_error(bad.value, 401, "authentication_error")
    with operator(server) as c:
        assert c.delete(f"/api/v1/registration-tokens/{minted['id']}").status_code == 200
    with managed(server, minted["token"]) as revoked, pytest.raises(qca.AuthenticationError):
        revoked.environments.work.stats(env.id)


# -- the async client --


async def test_async_client_environments_and_lists(server: Server) -> None:
    async with async_managed(server) as client:
        envs = client.environments
        created = [
            await envs.create(name=f"async{i}", config=SELF_HOSTED, metadata={"i": str(i)})
            for i in range(3)
        ]
        ids = [e.id for e in created]
        for e in created:
            complete(e)
        assert (await envs.retrieve(ids[0] or "")).model_dump() == created[0].model_dump()
        updated = await envs.update(ids[0] or "", metadata={"i": None, "k": "v"})
        assert updated.metadata == {"k": "v"}

        first = await envs.list(limit=1)  # awaiting the paginator gives the first page
        assert len(first.data) == 1 and first.has_more is True
        assert first.next_page == first.data[0].id
        second = await first.get_next_page()
        assert second.data[0].id != first.data[0].id
        every = [e.id async for e in envs.list(limit=1)]
        assert [i for i in every if i in ids] == ids

        archived = await envs.archive(ids[1] or "")
        assert archived.archived_at is not None
        assert ids[1] not in [e.id async for e in envs.list()]
        assert ids[1] in [e.id async for e in envs.list(include_archived=True)]
        assert (await envs.delete(ids[2] or "")).type == "environment_deleted"
        with pytest.raises(qca.NotFoundError) as gone:
            await envs.retrieve(ids[2] or "")
        check_error(gone.value, 404, "not_found_error")
        with pytest.raises(qca.BadRequestError) as bad:
            await envs.create(name="x", config={"type": "cloud"})
        check_error(bad.value, 400, "invalid_request_error", "config.type")


async def test_async_client_work_lifecycle(server: Server) -> None:
    async with async_managed(server) as client:
        env = await client.environments.create(name="async-work", config=SELF_HOSTED)
        assert env.id is not None
        env_id = env.id
        work = client.environments.work
        assert await work.poll(env_id, block_ms=1, worker_id="a1") is None

        # A held poll wakes when a session is queued.
        held = asyncio.create_task(work.poll(env_id, block_ms=999, worker_id="a1"))
        await asyncio.sleep(0.15)
        enqueued_at = time.monotonic()
        (sid,) = await asyncio.to_thread(enqueue, server, env_id, 1, metadata={"k": "v"})
        item = check_work(await asyncio.wait_for(held, 5), env_id, sid)
        assert time.monotonic() - enqueued_at < 0.6
        assert (item.state, item.metadata) == ("queued", {"k": "v"})
        wid = item.id or ""

        stats = await work.stats(env_id)
        complete(stats)
        assert (stats.depth, stats.pending, stats.workers_polling) == (0, 1, 1)
        with pytest.raises(qca.ConflictError) as conflict:
            await work.ack(wid, environment_id=env_id, extra_headers=as_worker("a2"))
        check_error(conflict.value, 409, "invalid_request_error", "another worker")
        acked = await work.ack(wid, environment_id=env_id, extra_headers=as_worker("a1"))
        assert acked.state == "starting"

        hb = await work.heartbeat(
            wid,
            environment_id=env_id,
            expected_last_heartbeat="NO_HEARTBEAT",
            desired_ttl_seconds=20,
        )
        complete(hb)
        assert (hb.state, hb.lease_extended, hb.ttl_seconds) == ("active", True, 20)
        hb2 = await work.heartbeat(
            wid, environment_id=env_id, expected_last_heartbeat=hb.last_heartbeat
        )
        assert hb2.ttl_seconds == 20 and utc(hb2.last_heartbeat) > utc(hb.last_heartbeat)
        with pytest.raises(qca.APIStatusError) as lost:
            await work.heartbeat(wid, environment_id=env_id, expected_last_heartbeat="NO_HEARTBEAT")
        assert type(lost.value) is qca.APIStatusError
        check_error(lost.value, 412, "precondition_failed_error")
        assert lost.value.body["error"]["details"]["current_state"]["last_heartbeat"] == (
            hb2.last_heartbeat
        )

        updated = await work.update(wid, environment_id=env_id, metadata={"k": None, "x": "y"})
        assert updated.metadata == {"x": "y"}
        got = await work.retrieve(wid, environment_id=env_id)
        complete(got)
        assert (got.state, got.latest_heartbeat_at) == ("active", hb2.last_heartbeat)
        more = await asyncio.to_thread(enqueue, server, env_id, 2)
        page = await work.list(env_id, limit=1)
        assert [w.id for w in page.data] == [wid] and page.next_page == wid
        assert [w.id async for w in work.list(env_id, limit=1)] == [wid] + [
            work_id(s) for s in more
        ]

        with pytest.raises(qca.BadRequestError) as bad:
            await work.poll(env_id, block_ms=1000)
        check_error(bad.value, 400, "invalid_request_error", "block_ms")
        with pytest.raises(qca.BadRequestError) as bad_reclaim:
            await work.poll(env_id, reclaim_older_than_ms=-5)
        check_error(bad_reclaim.value, 400, "invalid_request_error", "reclaim_older_than_ms")
        with pytest.raises(qca.NotFoundError):
            await work.stats("env_" + "0" * 32)

        stopping = await work.stop(wid, environment_id=env_id)
        assert stopping.state == "stopping"
        told = await work.heartbeat(wid, environment_id=env_id)
        assert told.state == "stopping"
        stopped = await work.stop(wid, environment_id=env_id)
        assert stopped.state == "stopped" and stopped.stopped_at is not None
        with pytest.raises(qca.ConflictError):
            await work.heartbeat(wid, environment_id=env_id)
        with pytest.raises(qca.ConflictError):
            await work.stop(work_id(more[0]), environment_id=env_id)
        assert (await work.stop(work_id(more[0]), environment_id=env_id, force=True)).state == (
            "stopped"
        )


async def test_async_workers_drain_the_queue_exactly_once(server: Server) -> None:
    """Two workers written with qca's async client, each polling under its own Worker-ID,
    acknowledging, heartbeating and ending what they take: every item is worked once."""
    async with async_managed(server) as admin:
        env = await admin.environments.create(name="drain", config=SELF_HOSTED)
    assert env.id is not None
    env_id = env.id
    sessions = set(await asyncio.to_thread(enqueue, server, env_id, 12))
    token = (await asyncio.to_thread(mint, server, env_id))["token"]
    handled: list[tuple[str, str]] = []

    async def worker(name: str) -> None:
        async with async_managed(server, token) as client:
            work = client.environments.work
            while True:
                item = await work.poll(env_id, block_ms=50, worker_id=name)
                if item is None:
                    if (await work.stats(env_id)).depth == 0:
                        return
                    continue
                wid = item.id or ""
                await work.ack(wid, environment_id=env_id, extra_headers=as_worker(name))
                hb = await work.heartbeat(
                    wid, environment_id=env_id, expected_last_heartbeat="NO_HEARTBEAT"
                )
                assert hb.state == "active"
                assert item.data is not None and item.data.id is not None
                handled.append((name, item.data.id))
                await asyncio.sleep(0.01)
                done = await work.stop(wid, environment_id=env_id, extra_headers=as_worker(name))
                assert done.state == "stopped"

    await asyncio.wait_for(asyncio.gather(worker("wa"), worker("wb")), 120)
    assert sorted(sid for _, sid in handled) == sorted(sessions)
    async with async_managed(server) as admin:
        assert {w.state async for w in admin.environments.work.list(env_id)} == {"stopped"}
        stats = await admin.environments.work.stats(env_id)
        assert (stats.depth, stats.pending, stats.workers_polling) == (0, 0, 2)
