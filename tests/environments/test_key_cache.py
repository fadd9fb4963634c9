"""API keys are remembered by their digest between requests (service/auth.py KeyCache), so a
long-polling fleet does not read the database on every poll. What it must not change: a
revoked key is refused on its next poll, and a key remembered for one environment or
organisation gives no access to another."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shopfloor.clock import ManualClock
from shopfloor.service.auth import KEY_CACHE_MS
from shopfloor.store.tenancy_records import OrgRecord
from tests.conftest import Backend, make_settings, running_app
from tests.environments.helpers import ADMIN, A, Q, assert_error, enqueue, new_environment

both = pytest.mark.parametrize("prefix", [Q, A], ids=["qoder", "anthropic"])


async def mint(api: httpx.AsyncClient, project: str | None = None) -> dict[str, Any]:
    body = {} if project is None else {"project": project}
    r = await api.post("/api/v1/registration-tokens", json=body, headers=ADMIN)
    assert r.status_code in (200, 201), r.text
    minted: dict[str, Any] = r.json()
    return minted


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def poll(api: httpx.AsyncClient, prefix: str, env: str, key: dict[str, str]) -> Any:
    return await api.get(f"{prefix}/{env}/work/poll", headers={**key, "Worker-ID": "w1"})


@both
async def test_a_revoked_key_is_refused_on_its_next_poll(
    api: httpx.AsyncClient, prefix: str
) -> None:
    env = await new_environment(api)
    minted = await mint(api, env)
    key = bearer(minted["token"])
    for _ in range(2):  # the second poll is answered from the remembered key
        r = await poll(api, prefix, env, key)
        assert r.status_code == 200 and r.json() is None
    r = await api.delete(f"/api/v1/registration-tokens/{minted['id']}", headers=ADMIN)
    assert r.status_code in (200, 204), r.text
    assert_error(await poll(api, prefix, env, key), 401, "authentication_error")
    # Nothing else was let in meanwhile: the admin key still works, the revoked one stays out.
    assert (await poll(api, prefix, env, ADMIN)).status_code == 200
    assert_error(await poll(api, prefix, env, key), 401, "authentication_error")


@both
async def test_a_remembered_key_gives_no_access_to_another_environment(
    api: httpx.AsyncClient, prefix: str
) -> None:
    env, other = await new_environment(api), await new_environment(api, "other")
    await enqueue(api, other)
    key = bearer((await mint(api, env))["token"])
    assert (await poll(api, prefix, env, key)).status_code == 200
    assert_error(await poll(api, prefix, other, key), 403, "permission_error")
    # The item of the other environment is still there for its own workers.
    assert (await poll(api, prefix, other, ADMIN)).json() is not None


@both
async def test_a_remembered_key_of_another_organisation_is_refused(
    api: httpx.AsyncClient, prefix: str, clock: ManualClock
) -> None:
    env = await new_environment(api)
    await enqueue(api, env)
    services = api.app.state.services  # type: ignore[attr-defined]
    store = services.dispatcher.store
    await store.insert_org(OrgRecord(id="org_other", slug="other", name="Other", created_at=1))
    _, token = await services.credentials.mint_registration_token(None, org_id="org_other")
    key = bearer(token)
    for _ in range(2):  # remembered after the first
        assert_error(await poll(api, prefix, env, key), 403, "permission_error")
    assert (await poll(api, prefix, env, ADMIN)).json() is not None  # not delivered before


async def test_another_process_refuses_a_revoked_key_within_the_cache_bound(
    backend: Backend, tmp_path: Any, clock: ManualClock
) -> None:
    """Two server processes on one database, the revocation's notification lost on the way
    (two in-process apps, whose notifiers do not reach each other): the other process
    refuses the key once KEY_CACHE_MS has passed, when it reads the key again."""
    settings = make_settings(backend, tmp_path)
    async with running_app(settings, clock) as one, running_app(settings, clock) as two:
        env = await new_environment(one)
        minted = await mint(one, env)
        key = bearer(minted["token"])
        assert (await poll(two, A, env, key)).status_code == 200
        r = await one.delete(f"/api/v1/registration-tokens/{minted['id']}", headers=ADMIN)
        assert r.status_code in (200, 204), r.text
        assert_error(await poll(one, A, env, key), 401, "authentication_error")
        clock.advance(KEY_CACHE_MS / 1000)
        assert_error(await poll(two, A, env, key), 401, "authentication_error")
