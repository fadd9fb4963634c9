"""Webhook intake (issue 21): deliveries signed as Linear and GitHub sign them, posted to the
real app on both databases. A Linear agent session created queues a session on its issue; a
prompt reaches the running session as a directive; a redelivery changes nothing; a bad
signature is 401 and changes nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from shopfloor.clock import ManualClock
from tests.agentfactory.helpers import ADMIN, poll, register, status
from tests.conftest import Backend, make_settings, running_app
from tests.integrations.helpers import (
    LINEAR_SECRET,
    linear_body,
    post_github,
    post_linear,
    sessions,
    settle,
)
from tests.platform.test_tenancy import key, new_org


def services(api: httpx.AsyncClient) -> Any:
    return api.app.state.services  # type: ignore[attr-defined]


async def test_agent_session_created_queues_a_session(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    body = linear_body("created", "lin-s1", clock.now_ms(), promptContext="please fix it")
    reply = await post_linear(api, body)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["ok"] is True and answer["eventId"] and answer["correlationId"]
    assert "duplicate" not in answer
    await settle(api)
    [session] = await sessions(api)
    assert session["sessionId"] == "lin-s1" and session["status"] == "pending"
    assert session["issueIdentifier"] == "ENG-42" and session["prompt"] == "please fix it"
    assert session["workType"] == "development"


async def test_a_redelivery_is_a_duplicate_and_creates_nothing(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    body = linear_body("created", "lin-s2", clock.now_ms())
    first = await post_linear(api, body, delivery="d-1")
    again = await post_linear(api, body, delivery="d-1")
    await settle(api)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["eventId"] == first.json()["eventId"]
    assert [s["sessionId"] for s in await sessions(api)] == ["lin-s2"]
    # The same session delivered again under a new delivery id: stored, skipped.
    other = await post_linear(api, body, delivery="d-2")
    await settle(api)
    found = await services(api).dispatcher.store.get_delivery(other.json()["eventId"])
    assert found.status == "skipped" and found.reason == "session_already_exists"
    assert len(await sessions(api)) == 1


async def test_a_bad_signature_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    body = linear_body("created", "lin-s3", clock.now_ms())
    wrong = await post_linear(api, body, secret="not-the-secret-at-all")
    assert wrong.status_code == 401 and wrong.json()["error"] == "Invalid signature"
    raw = json.dumps(body).encode()
    unsigned = await api.post("/api/webhooks/ingest/linear", content=raw)
    assert unsigned.status_code == 401
    tampered = await api.post(
        "/api/webhooks/ingest/linear",
        content=raw.replace(b"lin-s3", b"lin-s4"),
        headers={"linear-signature": (await _signature(raw))},
    )
    assert tampered.status_code == 401
    stale = linear_body("created", "lin-s5", clock.now_ms() - 120_000)
    assert (await post_linear(api, stale)).status_code == 401
    await settle(api)
    assert await sessions(api) == []
    assert await services(api).dispatcher.store.due_deliveries(clock.now_ms()) == []
    audit = (await api.get("/api/audit", headers=ADMIN)).json()["events"]
    assert all(e["eventType"] != "webhook.ingest" for e in audit)


async def _signature(raw: bytes) -> str:
    from shopfloor.service.webhook_signatures import sign

    return sign("linear", LINEAR_SECRET, raw)["linear-signature"]


async def test_the_reference_header_name_is_accepted(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    body = linear_body("created", "lin-x", clock.now_ms())
    reply = await post_linear(api, body, header="x-linear-signature")
    assert reply.status_code == 200, reply.text


async def test_a_prompt_reaches_the_running_session_as_a_directive(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    await post_linear(api, linear_body("created", "lin-s6", clock.now_ms()))
    await settle(api)
    prompt = linear_body(
        "prompted",
        "lin-s6",
        clock.now_ms(),
        agentActivity={"content": {"type": "prompt", "body": "also check Firefox"}},
    )
    first = await post_linear(api, prompt, delivery="p-1")
    await post_linear(api, prompt, delivery="p-1")  # redelivered: one directive only
    await settle(api)
    inbox = await services(api).dispatcher.store.list_inbox("lin-s6")
    assert [(m.type, m.payload) for m in inbox] == [("directive", "also check Firefox")]
    delivery = await services(api).dispatcher.store.get_delivery(first.json()["eventId"])
    assert delivery.status == "processed" and delivery.result["action"] == "prompted"


async def test_a_prompt_after_the_end_queues_again_at_priority_2(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    await post_linear(api, linear_body("created", "lin-s7", clock.now_ms()))
    await settle(api)
    stop = linear_body("prompted", "lin-s7", clock.now_ms(), agentActivity={"signal": "stop"})
    await post_linear(api, stop)
    await settle(api)
    again = linear_body(
        "prompted", "lin-s7", clock.now_ms(), agentActivity={"content": {"body": "go on"}}
    )
    await post_linear(api, again)
    await settle(api)
    found = {s["sessionId"]: s for s in await sessions(api)}
    assert found["lin-s7"]["status"] == "stopped"
    [requeued] = [s for s in found.values() if s["sessionId"] != "lin-s7"]
    assert requeued["priority"] == 2 and requeued["prompt"] == "go on"
    assert requeued["status"] == "pending"


async def test_a_created_delivery_without_its_issue_is_a_400(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    body = linear_body("created", "lin-s8", clock.now_ms())
    del body["agentSession"]["issue"]
    reply = await post_linear(api, body)
    assert reply.status_code == 400 and "agentSession.issue.id" in reply.json()["message"]
    not_json = await api.post(
        "/api/webhooks/ingest/linear",
        content=b"[1, 2",
        headers={"linear-signature": await _signature(b"[1, 2")},
    )
    assert not_json.status_code == 400
    await settle(api)
    assert await sessions(api) == []


async def test_github_deliveries_without_a_rule_are_skipped_with_a_reason(
    api: httpx.AsyncClient,
) -> None:
    for path in ("/api/webhooks/ingest/github", "/api/webhook/github"):
        reply = await post_github(api, "push", {"ref": "refs/heads/main"}, path=path)
        assert reply.status_code == 200, reply.text
        await settle(api)
        found = await services(api).dispatcher.store.get_delivery(reply.json()["eventId"])
        assert found.event_type == "github.push"
        assert found.status == "skipped" and found.reason == "no_trigger_rule"
    bad = await post_github(api, "push", {"ref": "x"}, secret="wrong-secret-0123456789")
    assert bad.status_code == 401


async def test_no_secret_is_503_and_an_unknown_provider_401(api: httpx.AsyncClient) -> None:
    signed = {"x-vercel-signature": "0" * 40}
    reply = await api.post("/api/webhooks/ingest/vercel", json={"id": "x"}, headers=signed)
    assert reply.status_code == 503
    assert reply.json()["message"] == "Webhook signature verification not configured"
    unsigned = await api.post("/api/webhooks/ingest/vercel", json={"id": "x"})
    assert unsigned.status_code == 401
    assert (await api.post("/api/webhooks/ingest/gitlab", json={})).status_code == 401


async def test_an_organisation_has_its_own_secret(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    a = await new_org(api, "a")
    await new_org(api, "b")
    key_a, key_b = await key(api, "a"), await key(api, "b")
    secret = "org-a-linear-secret-0123"
    # B's key can neither set nor delete A's secret.
    for headers in (key_b,):
        refused = await api.put(
            f"/api/org/{a}/webhooks/linear", json={"secret": secret}, headers=headers
        )
        assert refused.status_code == 403
        assert (
            await api.delete(f"/api/org/{a}/webhooks/linear", headers=headers)
        ).status_code == 403
    set_ = await api.put(f"/api/org/{a}/webhooks/linear", json={"secret": secret}, headers=key_a)
    assert set_.status_code == 200 and set_.json()["ingestUrl"].endswith(f"?org={a}")
    stored = await services(api).dispatcher.store.get_webhook_secret(a, "linear")
    assert secret not in stored.ciphertext
    body = linear_body("created", "lin-a1", clock.now_ms())
    # The server's own secret is not A's; A's secret is not the server's.
    assert (await post_linear(api, body, org="a")).status_code == 401
    assert (await post_linear(api, body, org="nope", secret=secret)).status_code == 401
    reply = await post_linear(api, body, org="a", secret=secret)
    assert reply.status_code == 200, reply.text
    await settle(api)
    [session] = await sessions(api, key_a)
    assert session["orgId"] == a
    assert await sessions(api, key_b) == []
    deleted = await api.delete(f"/api/org/{a}/webhooks/linear", headers=key_a)
    assert deleted.status_code == 200 and deleted.json()["configured"] is False
    assert (await post_linear(api, body, org="a", secret=secret)).status_code == 503
    assert (await api.post("/api/webhooks/ingest/linear?org=a", json=body)).status_code == 401


async def test_a_delivery_left_unprocessed_is_taken_over(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A process that stored a delivery and died before processing it: the upkeep of any
    process takes it over once its lease lapses, and processes it once."""
    webhooks = services(api).webhooks
    webhooks._start = lambda event_id: None  # this process "dies" right after answering
    reply = await post_linear(api, linear_body("created", "lin-s9", clock.now_ms()))
    event_id = reply.json()["eventId"]
    store = services(api).dispatcher.store
    taken = await store.lease_delivery(
        event_id, "dead-process", clock.now_ms(), clock.now_ms() + 30_000
    )
    assert taken is not None
    assert await webhooks.process_due() == 0  # the lease still holds
    clock.advance(31)
    assert await webhooks.process_due() == 1
    assert await webhooks.process_due() == 0
    assert [s["sessionId"] for s in await sessions(api)] == ["lin-s9"]
    assert not await store.finish_delivery(event_id, "dead-process", "processed", None, {}, 0)


async def test_a_trigger_rule_queues_a_session_for_matching_github_deliveries(
    api: httpx.AsyncClient,
) -> None:
    a = await new_org(api, "a")
    await new_org(api, "b")
    key_a, key_b = await key(api, "a"), await key(api, "b")
    rule = {
        "provider": "github",
        "eventType": "github.pull_request.opened",
        "match": {"repository.full_name": "acme/web"},
        "prompt": "Review PR #{{pull_request.number}}: {{pull_request.title}}",
        "workType": "qa",
    }
    # B's key can neither create, list nor delete A's rules.
    assert (
        await api.post(f"/api/org/{a}/webhook-triggers", json=rule, headers=key_b)
    ).status_code == 403
    assert (await api.get(f"/api/org/{a}/webhook-triggers", headers=key_b)).status_code == 403
    made = await api.post(f"/api/org/{a}/webhook-triggers", json=rule, headers=key_a)
    assert made.status_code == 201, made.text
    trigger = made.json()["id"]
    assert (
        await api.delete(f"/api/org/{a}/webhook-triggers/{trigger}", headers=key_b)
    ).status_code == 403
    bad = await api.post(
        f"/api/org/{a}/webhook-triggers", json={**rule, "eventType": "push"}, headers=key_a
    )
    assert bad.status_code == 400 and "eventType" in bad.json()["message"]
    secret = "org-a-github-secret-0123"
    await api.put(f"/api/org/{a}/webhooks/github", json={"secret": secret}, headers=key_a)
    pr = {
        "action": "opened",
        "repository": {"full_name": "acme/web"},
        "pull_request": {"number": 7, "title": "Add dark mode"},
    }
    path = f"/api/webhooks/ingest/github?org={a}"
    reply = await post_github(api, "pull_request", pr, secret=secret, path=path)
    other = {**pr, "repository": {"full_name": "acme/api"}}
    unmatched = await post_github(api, "pull_request", other, secret=secret, path=path)
    await settle(api)
    [session] = await sessions(api, key_a)
    assert session["prompt"] == "Review PR #7: Add dark mode" and session["workType"] == "qa"
    store = services(api).dispatcher.store
    done = await store.get_delivery(reply.json()["eventId"])
    assert done.status == "processed" and done.result["sessionIds"] == [session["sessionId"]]
    skipped = await store.get_delivery(unmatched.json()["eventId"])
    assert skipped.status == "skipped" and skipped.reason == "no_trigger_rule"
    # Processing the delivery again (a lapsed lease) queues nothing new.
    assert await services(api).webhooks.triggers.handle(done) is not None
    assert len(await sessions(api, key_a)) == 1
    listed = (await api.get(f"/api/org/{a}/webhook-triggers", headers=key_a)).json()
    assert [t["id"] for t in listed["triggers"]] == [trigger]
    gone = await api.delete(f"/api/org/{a}/webhook-triggers/{trigger}", headers=key_a)
    assert gone.status_code == 200
    assert (await api.get(f"/api/org/{a}/webhook-triggers", headers=key_a)).json() == {
        "triggers": []
    }


async def test_an_oversized_delivery_is_refused_unread(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    from shopfloor.api.platform.webhook_routes import WEBHOOK_MAX_BYTES

    body = linear_body("created", "lin-big", clock.now_ms(), promptContext="x" * WEBHOOK_MAX_BYTES)
    reply = await post_linear(api, body)
    assert reply.status_code == 413
    await settle(api)
    assert await sessions(api) == []


async def test_secrets_and_keys_live_in_private_files(api: httpx.AsyncClient) -> None:
    settings = services(api).settings
    for path in (settings.secret_key_path, settings.audit_key_path):
        assert path.is_file() and path.stat().st_mode & 0o777 == 0o600, path


async def test_the_development_switch_accepts_unsigned_deliveries(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    settings = make_settings(backend, tmp_path, webhook_skip_verification=True)
    async with running_app(settings, clock) as client:
        body = linear_body("created", "lin-dev", clock.now_ms())
        reply = await client.post("/api/webhooks/ingest/linear", json=body)
        assert reply.status_code == 200, reply.text
        await settle(client)
        assert [s["sessionId"] for s in await sessions(client)] == ["lin-dev"]
        # Only for the server's own organisation: another's deliveries still need a secret.
        await new_org(client, "a")
        other = await client.post("/api/webhooks/ingest/linear?org=a", json=body)
        assert other.status_code == 401


async def test_a_delivery_that_keeps_failing_is_given_up(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    webhooks = services(api).webhooks
    webhooks._start = lambda event_id: None
    reply = await post_linear(api, linear_body("created", "lin-poison", clock.now_ms()))
    event_id = reply.json()["eventId"]
    store = services(api).dispatcher.store
    for _ in range(5):  # five processes that died mid-way
        now = clock.now_ms()
        assert await store.lease_delivery(event_id, "dying", now, now + 1000) is not None
        clock.advance(2)
    assert await webhooks.process(event_id)
    found = await store.get_delivery(event_id)
    assert found.status == "skipped" and found.reason == "failed after 5 attempts"
    assert await sessions(api) == []


async def test_linear_skips_follow_the_receivers_rules(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> None:
    settings = make_settings(
        backend,
        tmp_path,
        webhook_secret_linear=LINEAR_SECRET,
        linear_allowed_projects="web, api",
        linear_session_cap=1,
    )
    async with running_app(settings, clock) as client:

        def issue(**fields: Any) -> dict[str, Any]:
            body = linear_body("created", f"lin-{uuid.uuid4().hex[:8]}", clock.now_ms())
            body["agentSession"]["issue"].update({"project": {"name": "web"}, **fields})
            return body

        cases = [
            (issue(parentId="iss-parent"), "sub_issue_managed_by_parent"),
            (issue(state={"name": "Done", "type": "completed"}), "terminal_state"),
            (issue(project={"name": "mobile"}), "project_not_allowed"),
            (issue(), None),
            (issue(), "session_hard_cap"),
        ]
        for body, reason in cases:
            reply = await post_linear(client, body)
            await settle(client)
            found = await services(client).dispatcher.store.get_delivery(reply.json()["eventId"])
            assert found.reason == reason, (body, found)
        assert len(await sessions(client)) == 1


async def test_an_issue_status_transition_queues_follow_up_work_with_a_cooldown(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Issue status transitions (Finished -> QA) as the operator's rule on Linear's Issue
    deliveries: one live session per issue, none again within the cooldown."""
    rule = {
        "provider": "linear",
        "eventType": "linear.issue.update",
        "match": {"data.state.name": "Finished"},
        "prompt": "QA {{data.identifier}}",
        "workType": "qa",
        "issue": "{{data.id}}",
        "cooldownSeconds": 600,
    }
    made = await api.post("/api/org/org_default/webhook-triggers", json=rule, headers=ADMIN)
    assert made.status_code == 201, made.text

    def finished() -> dict[str, Any]:
        return {
            "type": "Issue",
            "action": "update",
            "webhookTimestamp": clock.now_ms(),
            "data": {"id": "iss-9", "identifier": "ENG-9", "state": {"name": "Finished"}},
            "updatedFrom": {"stateId": "started"},
        }

    store = services(api).dispatcher.store
    first = await post_linear(api, finished())
    await settle(api)
    again = await post_linear(api, finished())
    await settle(api)
    assert (await store.get_delivery(first.json()["eventId"])).status == "processed"
    assert (await store.get_delivery(again.json()["eventId"])).reason == "cooldown"
    [session] = await sessions(api)
    assert session["prompt"] == "QA ENG-9" and session["issueId"] == "iss-9"
    clock.advance(601)
    later = await post_linear(api, finished())
    await settle(api)
    assert (await store.get_delivery(later.json()["eventId"])).status == "processed"
    assert len(await sessions(api)) == 2


async def test_failures_on_an_issue_hold_back_new_sessions_until_a_mention_or_the_backoff(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    """The failure circuit breaker: after a failed session on the issue, a delegation waits
    2 minutes (`session_failure_backoff`), a mention passes at once; five failures in a row
    stop automatic sessions (`session_failure_hard_stop`), a mention included; an hour after
    the last failure the issue is forgotten."""
    store = services(api).dispatcher.store
    worker = await register(api, capacity=1)

    async def created(session_id: str, **extra: Any) -> Any:
        body = linear_body("created", session_id, clock.now_ms(), **extra)
        body["agentSession"]["issue"]["id"] = "iss-flaky"
        reply = await post_linear(api, body)
        await settle(api)
        return await store.get_delivery(reply.json()["eventId"])

    async def fail(session_id: str) -> None:
        [work] = (await poll(api, worker))["work"]
        assert work["sessionId"] == session_id
        failed = await status(api, session_id, worker, "failed", error={"message": "tests broke"})
        assert failed.status_code == 200, failed.text

    assert (await created("lin-f1")).status == "processed"
    await fail("lin-f1")
    clock.advance(60)
    held = await created("lin-f2")
    assert held.status == "skipped" and held.reason == "session_failure_backoff"
    assert held.result["failureCount"] == 1 and 0 < held.result["backoffRemainingS"] <= 60
    assert held.result["lastError"] == "tests broke"
    clock.advance(61)  # the 2 minutes have passed
    assert (await created("lin-f3")).status == "processed"
    await fail("lin-f3")
    clock.advance(200)  # two failures wait 4 minutes
    assert (await created("lin-f4")).reason == "session_failure_backoff"
    mention = await created("lin-f5", comment={"body": "@agent try again"})
    assert mention.status == "processed", mention.reason
    assert (await store.get_session("lin-f5")).extra["initiation"] == "mention"
    for n in range(5):  # the mention's session and four more fail: five in a row
        session_id = "lin-f5" if n == 0 else f"lin-g{n}"
        if n:
            clock.advance(1801)
            assert (await created(session_id)).status == "processed"
        await fail(session_id)
    clock.advance(1801)
    stopped = await created("lin-h1", comment={"body": "@agent please"})
    assert stopped.reason == "session_failure_hard_stop" and stopped.result["failureCount"] == 5
    assert await store.get_session("lin-h1") is None
    clock.advance(3600)
    assert (await created("lin-h2")).status == "processed"
