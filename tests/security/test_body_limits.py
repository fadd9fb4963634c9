"""Request bodies are bounded before they are parsed, and before authentication: a declared
length over the limit is refused unread, a streamed body fails at the first byte past it, and
neither grows the server (issue 16, item 3)."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from shopfloor.api.limits import MIB
from tests.conftest import ADMIN_KEY, WORKER_KEY, Backend
from tests.processes.server import ServerProcess, server_env, start_server, stop_cleanly

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WORKER = {"Authorization": f"Bearer {WORKER_KEY}"}
HUGE = 200 * MIB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("limits")
    backend = Backend("sqlite", f"sqlite:///{tmp / 'shopfloor.db'}", None)
    proc = start_server(server_env(backend, tmp / "data"), tmp / "server.log")
    yield proc
    stop_cleanly(proc)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10)


def _head(path: str, framing: str, auth: str | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: shopfloor", "Content-Type: application/json"]
    lines += [framing] + ([f"Authorization: Bearer {auth}"] if auth else [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status_and_body(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def declared_too_large(url: str, path: str, length: int, auth: str | None = None) -> int:
    """Send only the headers of a request declaring `length` bytes, and read the answer."""
    with _connect(url) as sock:
        sock.sendall(_head(path, f"Content-Length: {length}", auth))
        status, _ = _status_and_body(sock)
        return status


def streamed(url: str, path: str, total: int, auth: str | None = None) -> tuple[int, int]:
    """Stream a chunked body of up to `total` bytes until the server answers; returns the
    status and how many bytes went out before the answer came."""
    chunk = b"[" + b" " * (MIB - 2) + b"]"  # a valid JSON array, should it all be read
    sent = 0
    with _connect(url) as sock:
        sock.sendall(_head(path, "Transfer-Encoding: chunked", auth))
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        else:
            sock.sendall(b"0\r\n\r\n")
        status, _ = _status_and_body(sock)
        return status, sent


def test_an_unauthenticated_huge_declared_body_is_refused_unread(server: ServerProcess) -> None:
    before = rss_bytes(server.proc.pid)
    for path in ("/api/v1/sessions", "/api/workers/register", "/runs", "/v1/environments"):
        assert declared_too_large(server.url, path, HUGE) == 413
    assert rss_bytes(server.proc.pid) - before < 50 * MIB


def test_an_unauthenticated_huge_streamed_body_stops_at_the_limit(server: ServerProcess) -> None:
    before = rss_bytes(server.proc.pid)
    status, sent = streamed(server.url, "/api/v1/sessions", HUGE)
    assert status == 413
    assert sent < 50 * MIB  # the server answered long before the body ended
    assert rss_bytes(server.proc.pid) - before < 50 * MIB


def test_an_authenticated_huge_prompt_is_refused_and_not_stored(server: ServerProcess) -> None:
    status, _ = streamed(server.url, "/api/v1/sessions", HUGE, auth=ADMIN_KEY)
    assert status == 413
    listed = httpx.get(server.url + "/api/v1/sessions", headers=ADMIN).json()
    assert listed["sessions"] == []


def test_the_refusal_is_in_each_protocols_envelope(server: ServerProcess) -> None:
    big = b"{" + b" " * (MIB + 1) + b"}"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        operator = http.post("/api/v1/sessions", content=big, headers=ADMIN)
        assert operator.status_code == 413
        assert operator.json() == {
            "error": "Request Entity Too Large",
            "message": f"Request body is larger than {MIB} bytes",
        }
        env = http.post("/v1/environments", content=big, headers=ADMIN)
        assert env.status_code == 413
        assert env.json()["type"] == "error"
        assert env.json()["error"]["message"] == f"Request body is larger than {MIB} bytes"
        vf = http.post("/runs", content=big, headers=ADMIN)
        assert vf.status_code == 413
        assert vf.json()["detail"] == f"Request body is larger than {MIB} bytes"


@pytest.mark.parametrize("size", [MIB - 64, MIB + 1])
def test_just_under_and_over_the_default_limit(server: ServerProcess, size: int) -> None:
    body = b'{"hostname": "h", "capacity": 1, "version": "' + b"v" * size + b'"}'
    body = body[: size - 2] + b'"}' if len(body) > size else body
    body = body.ljust(size - 1) + b"\n" if len(body) < size else body
    assert len(body) == size
    reply = httpx.post(server.url + "/api/workers/register", content=body, headers=WORKER)
    if size <= MIB:
        assert reply.status_code == 201, reply.text
    else:
        assert reply.status_code == 413
        assert "larger than" in reply.json()["message"]


@pytest.mark.parametrize("size", [10 * MIB - 64, 10 * MIB + 1])
def test_veryfront_event_appends_take_ten_mib(server: ServerProcess, size: int) -> None:
    """The event append declares its own limit and the protocol's own refusal (a 400)."""
    run = "/conversations/00000000-0000-4000-8000-000000000001/runs/run-1/events"
    body = (b'{"events": []}').ljust(size)
    reply = httpx.post(server.url + run, content=body, headers=ADMIN, timeout=30)
    if size <= 10 * MIB:
        # Read whole and parsed: an empty event list is the first thing refused.
        assert reply.status_code == 400
        assert reply.json()["detail"] == "events must be an array of 1-100 events"
    else:
        assert reply.status_code == 400
        assert reply.json()["detail"] == "Request payload must be less than 10 MiB"


def test_the_default_limit_is_a_setting(tmp_path: Path) -> None:
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    env = server_env(backend, tmp_path / "data", SHOPFLOOR_MAX_BODY_BYTES="1000")
    proc = start_server(env, tmp_path / "server.log")
    try:
        body = {"hostname": "h" * 1000, "capacity": 1}
        too_big = httpx.post(proc.url + "/api/workers/register", json=body, headers=WORKER)
        assert too_big.status_code == 413
        assert too_big.json()["message"] == "Request body is larger than 1000 bytes"
        fits = httpx.post(
            proc.url + "/api/workers/register",
            json={"hostname": "h", "capacity": 1},
            headers=WORKER,
        )
        assert fits.status_code == 201
    finally:
        stop_cleanly(proc)


@pytest.mark.parametrize(("size", "status"), [(2 * MIB, 400), (32 * MIB + 1, 413)])
def test_managed_session_events_take_tool_results_of_32_mib(
    server: ServerProcess, size: int, status: int
) -> None:
    """A tool result may carry a file, an image or a PDF: the events route takes 32 MiB
    (read whole and parsed, an empty event list is the first thing it refuses)."""
    body = b'{"events": []}'.ljust(size)
    path = "/v1/sessions/sesn_00000000000000000000000000/events"
    reply = httpx.post(server.url + path, content=body, headers=ADMIN, timeout=60)
    assert reply.status_code == status, reply.text
