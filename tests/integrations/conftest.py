from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shopfloor.clock import ManualClock
from tests.conftest import Backend, make_settings, running_app
from tests.integrations.helpers import GITHUB_SECRET, LINEAR_SECRET


@pytest.fixture
async def api(
    backend: Backend, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the default organisation's Linear and GitHub secrets configured."""
    settings = make_settings(
        backend,
        tmp_path,
        webhook_secret_linear=LINEAR_SECRET,
        webhook_secret_github=GITHUB_SECRET,
    )
    async with running_app(settings, clock) as client:
        yield client
