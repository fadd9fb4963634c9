"""The credential vault (rensei-platform.md §1.6-1.8): values stored encrypted with a key
outside the database and never returned by the management routes; a daemon's snapshot merges
organisation, project and environment credentials and leaves the server's own secrets out; no
organisation's key sees or changes another's. In-process on both databases."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopfloor.clock import ManualClock
from shopfloor.service.notifier import LocalNotifier
from shopfloor.service.secret_box import SecretBox
from shopfloor.service.vault import Scope, Vault
from shopfloor.store import Store
from tests.agentfactory.helpers import ADMIN
from tests.conftest import WORKER_KEY, Backend
from tests.platform.test_tenancy import bearer, key, new_org

SECRET = "ghp_0123456789abcdefSECRET"


async def put(
    api: httpx.AsyncClient, org: str, headers: dict[str, str] = ADMIN, **body: Any
) -> httpx.Response:
    return await api.post(f"/api/org/{org}/credentials", json=body, headers=headers)


async def snapshot(api: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await api.post("/api/daemon/credentials/snapshot", json=body, headers=headers)


async def registration_key(api: httpx.AsyncClient, org: str, project: str) -> dict[str, str]:
    reply = await api.post(
        f"/api/org/{org}/keys",
        json={"name": "daemon", "projects": [project], "keyType": "worker_registration"},
        headers=ADMIN,
    )
    assert reply.status_code == 200, reply.text
    return bearer(reply.json()["key"]["fullKey"])


async def test_a_value_is_stored_encrypted_and_never_returned(
    api: httpx.AsyncClient, backend: Backend, tmp_path: Path
) -> None:
    org = await new_org(api, "acme")
    stored = await put(api, "acme", name="GITHUB_TOKEN", value=SECRET)
    assert stored.status_code == 200, stored.text
    view = stored.json()["credential"]
    assert (view["orgId"], view["name"], view["projectId"], view["envName"]) == (
        org,
        "GITHUB_TOKEN",
        "all",
        "all",
    )
    listed = await api.get(f"/api/org/{org}/credentials", headers=ADMIN)
    assert [c["id"] for c in listed.json()["credentials"]] == [view["id"]]
    assert SECRET not in stored.text + listed.text
    # At rest: ciphertext only, and the key in its own file, mode 0600.
    store: Store = api.app.state.services.dispatcher.store  # type: ignore[attr-defined]
    [row] = await store.list_credentials(org)
    assert SECRET not in row.ciphertext and "ghp_" not in row.ciphertext
    key_file = tmp_path / "data" / "secret-keys.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert SECRET not in key_file.read_text()
    if backend.name == "sqlite":
        raw = (tmp_path / "shopfloor.db").read_bytes()
        assert SECRET.encode() not in raw


async def test_the_snapshot_merges_and_leaves_the_servers_secrets_out(
    api: httpx.AsyncClient,
) -> None:
    org = await new_org(api, "acme")
    for body in (
        {"name": "A", "value": "org"},
        {"name": "B", "value": "org"},
        {"name": "C", "value": "org"},
        {"name": "B", "value": "org-staging", "envName": "staging"},
        {"name": "A", "value": "web", "projectId": "web"},
        {"name": "C", "value": "web-staging", "projectId": "web", "envName": "staging"},
        {"name": "D", "value": "api only", "projectId": "api"},
        {"name": "SHOPFLOOR_ADMIN_API_KEY", "value": "x"},
        {"name": "WORKER_API_KEY", "value": "x"},
        {"name": "LEAKED", "value": WORKER_KEY},
        {"name": "OTHER_KEY", "value": "rsk_live_" + "0" * 64},
    ):
        assert (await put(api, "acme", **body)).status_code == 200, body
    daemon = await registration_key(api, "acme", "web")
    staging = await snapshot(api, daemon, orgId="acme", projectId="web", envName="staging")
    assert staging.status_code == 200, staging.text
    assert staging.json()["env"] == {"A": "web", "B": "org-staging", "C": "web-staging"}
    production = await snapshot(api, daemon, orgId=org, projectId="web")
    assert production.json()["env"] == {"A": "web", "B": "org", "C": "org"}
    assert production.json()["refreshUntil"] > "2000"


async def test_another_organisations_key_neither_sees_nor_changes(
    api: httpx.AsyncClient,
) -> None:
    a = await new_org(api, "a")
    await new_org(api, "b")
    key_b = await key(api, "b")
    cred = (await put(api, "a", name="TOKEN", value=SECRET)).json()["credential"]
    assert (await put(api, "a", key_b, name="TOKEN", value="theirs")).status_code == 403
    assert (await api.get(f"/api/org/{a}/credentials", headers=key_b)).status_code == 403
    gone = await api.delete(f"/api/org/b/credentials/{cred['id']}", headers=key_b)
    assert gone.status_code == 404
    refused = await snapshot(api, key_b, orgId="a")
    assert refused.status_code == 403
    assert refused.json() == {"error": "orgId: does not match the authenticated organisation"}
    assert (await snapshot(api, key_b, orgId="b")).json()["env"] == {}
    rotate = await api.post(
        "/api/daemon/credentials/rotate", json={"orgId": "a", "kind": "TOKEN"}, headers=key_b
    )
    assert rotate.status_code == 403
    # A's credential is as it was.
    assert (await snapshot(api, ADMIN, orgId="a")).json()["env"] == {"TOKEN": SECRET}


async def test_scopes_and_projects_bound_each_route(api: httpx.AsyncClient) -> None:
    org = await new_org(api, "acme")
    cred = (await put(api, "acme", name="T", value="v", projectId="web")).json()["credential"]
    reader = await key(api, "acme", scopes=["sessions:read"])
    for reply in (
        await put(api, "acme", reader, name="T", value="x"),
        await api.get(f"/api/org/{org}/credentials", headers=reader),
        await api.delete(f"/api/org/{org}/credentials/{cred['id']}", headers=reader),
    ):
        assert reply.status_code == 403
        assert reply.json()["message"] == "This key lacks the credentials:write scope"
    refused = await snapshot(api, reader, orgId="acme", projectId="web")
    assert refused.json() == {"error": "This key lacks the credentials:read scope"}
    api_manager = await key(api, "acme", projects=["api"], scopes=["credentials:write"])
    assert (await put(api, "acme", api_manager, name="T", value="x")).status_code == 403
    mine = await put(api, "acme", api_manager, name="T", value="x", projectId="api")
    assert mine.status_code == 200
    listed = (await api.get(f"/api/org/{org}/credentials", headers=api_manager)).json()
    assert [c["projectId"] for c in listed["credentials"]] == ["api"]
    other = await api.delete(f"/api/org/{org}/credentials/{cred['id']}", headers=api_manager)
    assert other.status_code == 404
    daemon = await registration_key(api, "acme", "api")
    assert (await snapshot(api, daemon, orgId="acme", projectId="web")).status_code == 403
    no_project = await snapshot(api, daemon, orgId="acme")
    assert no_project.json() == {"error": "projectId is required for a key limited to projects"}
    assert (await snapshot(api, daemon, orgId="acme", projectId="api")).json()["env"] == {"T": "x"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"value": "v"}, "name: Field required"),
        ({"name": "T"}, "value: Field required"),
        ({"name": "1BAD", "value": "v"}, "name: must be an environment variable name"),
        ({"name": "T", "value": ""}, "value: String should have at least 1 character"),
        ({"name": "T", "value": "v", "projectId": 3}, "projectId: Input should be a valid string"),
    ],
)
async def test_bad_credentials_name_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    org = await new_org(api, "acme")
    reply = await put(api, "acme", **body)
    assert (reply.status_code, reply.json()["message"]) == (400, message)
    assert (await api.get(f"/api/org/{org}/credentials", headers=ADMIN)).json() == {
        "credentials": []
    }


async def test_bad_daemon_requests_name_the_field(api: httpx.AsyncClient) -> None:
    await new_org(api, "acme")
    for body, message in (
        ({}, "orgId: Field required"),
        ({"orgId": "acme", "envName": ""}, "envName: String should have at least 1 character"),
        ({"orgId": "nope"}, "orgId: does not match the authenticated organisation"),
    ):
        reply = await snapshot(api, ADMIN, **body)
        assert reply.json() == {"error": message}, body
    rotate = await api.post("/api/daemon/credentials/rotate", json={"orgId": "acme"}, headers=ADMIN)
    assert rotate.json() == {"error": "kind: Field required"}
    stream = await api.get("/api/daemon/credentials/rotate-stream", headers=ADMIN)
    assert stream.json() == {"error": "sessionId is required"}
    unknown = await api.get(
        "/api/daemon/credentials/rotate-stream", params={"sessionId": "nope"}, headers=ADMIN
    )
    assert (unknown.status_code, unknown.json()) == (404, {"error": "Session not found"})


async def test_rotate_answers_in_the_reference_shape(api: httpx.AsyncClient) -> None:
    await new_org(api, "acme")
    any_key = await key(api, "acme", scopes=["sessions:read"])
    reply = await api.post(
        "/api/daemon/credentials/rotate", json={"orgId": "acme", "kind": "github"}, headers=any_key
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["ok"], body["kind"], body["sessionCount"]) == (True, "github", 0)
    assert body["rotatedAt"].endswith("Z")


async def test_a_value_opens_only_with_its_key_and_in_its_place(
    store: Store, tmp_path: Path, clock: ManualClock
) -> None:
    def vault(name: str) -> Vault:
        box = SecretBox(tmp_path / name)
        box.load_or_create(clock.now_ms())
        return Vault(store, clock, LocalNotifier(), box)

    ours, theirs = vault("ours.json"), vault("theirs.json")
    await ours.put(Scope("org_a"), "TOKEN", SECRET)
    assert await ours.env(Scope("org_a", "web", "production")) == {"TOKEN": SECRET}
    assert await theirs.env(Scope("org_a", "web", "production")) == {}  # the key is the file
    # A row copied into another organisation does not open there.
    [row] = await store.list_credentials("org_a")
    await store.put_credential(dataclasses.replace(row, id="cred_copy", org_id="org_b"))
    assert await ours.env(Scope("org_b")) == {}
