"""A poll may rely on another poll's empty look at the queue moments ago instead of reading
the database (service/work.py IdleLooks). It must still see what changed since: work
enqueued, an unacknowledged item whose redelivery window passed, a deleted environment."""

from __future__ import annotations

import httpx
import pytest

from shopfloor.clock import ManualClock
from tests.environments.helpers import ADMIN, A, Q, assert_error, enqueue, new_environment

both = pytest.mark.parametrize("prefix", [Q, A], ids=["qoder", "anthropic"])


async def poll(api: httpx.AsyncClient, prefix: str, env: str, **params: str) -> httpx.Response:
    return await api.get(f"{prefix}/{env}/work/poll", params=params, headers=ADMIN)


@both
async def test_polls_right_after_an_empty_look_see_what_changed(
    api: httpx.AsyncClient, prefix: str, clock: ManualClock
) -> None:
    env = await new_environment(api)
    assert (await poll(api, prefix, env)).json() is None  # an empty look, remembered
    await enqueue(api, env)
    item = (await poll(api, prefix, env)).json()  # the clock has not moved
    assert item is not None
    assert (await poll(api, prefix, env)).json() is None  # delivered, not yet redeliverable
    # A poll with a shorter reclaim window than the item's age gets it again.
    clock.advance(0.05)
    again = (await poll(api, prefix, env, reclaim_older_than_ms="10")).json()
    assert again is not None and again["id"] == item["id"]


@both
async def test_a_deleted_environment_is_404_on_the_next_poll(
    api: httpx.AsyncClient, prefix: str
) -> None:
    env = await new_environment(api)
    assert (await poll(api, prefix, env)).json() is None
    assert (await api.delete(f"{prefix}/{env}", headers=ADMIN)).status_code == 200
    assert_error(await poll(api, prefix, env), 404, "not_found_error")
