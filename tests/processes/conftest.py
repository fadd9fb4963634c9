from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Backend
from tests.processes.server import ServerProcess, server_env, start_server, stop_cleanly


@pytest.fixture
def server(backend: Backend, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(server_env(backend, tmp_path / "data"), tmp_path / "server.log")
    yield proc
    stop_cleanly(proc)
