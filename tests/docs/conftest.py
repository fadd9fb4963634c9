from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Backend
from tests.processes.server import ServerProcess, server_env, start_server, stop_cleanly


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real `shopfloor serve` process on a SQLite file (the pages need no data)."""
    tmp: Path = tmp_path_factory.mktemp("docs")
    backend = Backend("sqlite", f"sqlite:///{tmp / 'shopfloor.db'}", None)
    server = start_server(server_env(backend, tmp / "data"), tmp / "server.log")
    yield server
    stop_cleanly(server)
