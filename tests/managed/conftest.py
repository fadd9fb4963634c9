"""Managed-session tests: the app in-process (or a real server) with the agent loop's model
calls going to a stand-in Messages API server (fake_model.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopfloor.clock import ManualClock
from tests.conftest import Backend, make_settings, running_app
from tests.managed.fake_model import FakeModel, serve_fake_model

MODEL_KEY = "test-model-key"


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    with serve_fake_model() as fake:
        yield fake


def model_settings(fake: FakeModel, **overrides: Any) -> dict[str, Any]:
    return {"model_base_url": fake.url, "model_api_key": MODEL_KEY, **overrides}


@pytest.fixture
async def mapi(
    backend: Backend, tmp_path: Path, clock: ManualClock, fake_model: FakeModel
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(backend, tmp_path, **model_settings(fake_model))
    async with running_app(settings, clock) as client:
        yield client
