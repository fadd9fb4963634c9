"""A stand-in for the Anthropic Messages API: a real HTTP server on 127.0.0.1 (a thread) that
answers `POST /v1/messages` from a script, so the agent loop's model calls go over the wire
through the real `anthropic` SDK client.

A script is picked by the `script:<name>` marker in the request's system prompt. Its n-th
step answers the request whose messages hold n assistant turns, so a call that is made again
(a turn resumed after a restart) gets the same answer. A step is a reply body, a callable of
the request returning one, or a `Fail` (status and body, a hang, or raw bytes)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fail:
    status: int = 500
    body: bytes = b'{"type":"error","error":{"type":"api_error","message":"scripted failure"}}'
    hang: float = 0.0  # seconds to wait before answering
    release: threading.Event | None = None  # answer only once this is set


Step = dict[str, Any] | Fail | Callable[[dict[str, Any]], "dict[str, Any] | Fail"]


def text(answer: str, stop_reason: str = "end_turn") -> dict[str, Any]:
    return _message([{"type": "text", "text": answer}], stop_reason)


def tool_calls(*calls: tuple[str, dict[str, Any]], say: str | None = None) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": say}] if say else []
    for i, (name, tool_input) in enumerate(calls):
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_{name}_{i}_{time.monotonic_ns()}",
                "name": name,
                "input": tool_input,
            }
        )
    return _message(blocks, "tool_use")


def _message(content: list[dict[str, Any]], stop_reason: str) -> dict[str, Any]:
    return {
        "id": f"msg_{time.monotonic_ns()}",
        "type": "message",
        "role": "assistant",
        "model": "fake-model",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


@dataclass
class Seen:
    """One request the server got: its body and headers, and when it arrived."""

    body: dict[str, Any]
    headers: dict[str, str]
    at: float  # time.perf_counter()
    wall: float  # time.time()
    answered_at: float | None = None  # time.perf_counter() as its answer is written

    @property
    def assistant_turns(self) -> int:
        return sum(1 for m in self.body.get("messages", []) if m.get("role") == "assistant")

    def last_user_content(self) -> list[dict[str, Any]]:
        return last_user_content(self.body)


def last_user_content(body: dict[str, Any]) -> list[dict[str, Any]]:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def result_texts(body: dict[str, Any]) -> list[str]:
    """The text of each tool_result block of the request's last user message."""
    out = []
    for block in last_user_content(body):
        if block.get("type") == "tool_result":
            out.append("".join(c.get("text", "") for c in block.get("content") or []))
    return out


@dataclass
class FakeModel:
    url: str = ""
    scripts: dict[str, list[Step]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, name: str, *steps: Step) -> str:
        """Register a script; returns the system prompt that selects it."""
        with self.lock:
            self.scripts[name] = list(steps)
        return f"You are a test agent. script:{name}"

    def seen(self, name: str) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if f"script:{name}" in str(r.body.get("system"))]

    def wait_for(self, name: str, count: int, timeout: float = 30.0) -> list[Seen]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.seen(name)
            if len(found) >= count:
                return found
            time.sleep(0.01)
        raise AssertionError(f"script {name}: {len(self.seen(name))} of {count} requests came")

    def answer(self, body: dict[str, Any]) -> Step:
        system = str(body.get("system"))
        name = system.split("script:", 1)[1].split()[0] if "script:" in system else ""
        with self.lock:
            steps = self.scripts.get(name)
        if not steps:
            return Fail(
                400,
                b'{"type":"error","error":{"type":"invalid_request_error","message":"no script"}}',
            )
        turn = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        return steps[min(turn, len(steps) - 1)]


def _handler(fake: FakeModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The headers and the body go out in two writes: with Nagle's algorithm on, the body
        # would wait for the client's delayed ACK (about 40 ms), which no real API adds.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length)
            body = json.loads(raw)
            seen = Seen(
                body,
                {k.lower(): v for k, v in self.headers.items()},
                time.perf_counter(),
                time.time(),
            )
            with fake.lock:
                fake.requests.append(seen)
            if self.path.split("?")[0] != "/v1/messages":
                self._send(404, b'{"type":"error","error":{"type":"not_found_error"}}')
                return
            step = fake.answer(body)
            if callable(step):
                step = step(body)
            if isinstance(step, Fail):
                if step.release is not None:
                    step.release.wait(60)
                if step.hang:
                    time.sleep(step.hang)
                self._send(step.status, step.body)
                return
            self._send(200, json.dumps(step).encode(), seen)

        def _send(self, status: int, payload: bytes, seen: Seen | None = None) -> None:
            try:
                if seen is not None:
                    seen.answered_at = time.perf_counter()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.send_header("x-should-retry", "false")
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@contextmanager
def serve_fake_model() -> Iterator[FakeModel]:
    fake = FakeModel()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
