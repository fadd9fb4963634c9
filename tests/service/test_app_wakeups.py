"""The app picks its notifier by backend, and an enqueue through one server wakes a long poll
waiting in another server on the same PostgreSQL (two apps = two processes' worth of state:
separate stores, pools and LISTEN connections)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from shopfloor.api.state import Services
from shopfloor.clock import ManualClock
from shopfloor.service.notifier import BroadcastNotifier, LocalNotifier
from tests.conftest import ADMIN_KEY, Backend, make_settings, running_app

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def services_of(client: httpx.AsyncClient) -> Services:
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    return svc


async def test_enqueue_on_one_server_wakes_a_poll_waiting_on_another(
    backend: Backend, tmp_path: Path
) -> None:
    settings = make_settings(backend, tmp_path)
    async with (
        running_app(settings, ManualClock()) as one,
        running_app(settings, ManualClock()) as two,
    ):
        waiting_on = services_of(two).dispatcher.notifier
        if backend.name == "postgres":
            assert isinstance(waiting_on, BroadcastNotifier)
        else:
            assert type(waiting_on) is LocalNotifier
        # On SQLite there is one server process, so the enqueue and the poll share it.
        enqueue_on = one if backend.name == "postgres" else two
        assert isinstance(waiting_on, LocalNotifier)
        poll = asyncio.create_task(waiting_on.wait("agentfactory", 10))
        await asyncio.sleep(0)
        assert waiting_on.waiting("agentfactory") == 1
        reply = await enqueue_on.post("/api/v1/sessions", json={"prompt": "go"}, headers=ADMIN)
        assert reply.status_code == 201, reply.text
        assert await poll is True
