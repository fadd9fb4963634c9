"""A self-hosted worker for Qoder's environment, written with Qoder's SDK `qca` (there is no
published Qoder worker): the loop of the `anthropic` SDK's EnvironmentWorker, on `qca`'s
clients. It polls the environment's queue, acknowledges an item and claims its lease with a
first heartbeat (`NO_HEARTBEAT`), heartbeats while it serves, reads the item's session,
opens its event stream and then reads its history, runs each tool call the agent makes
(`bash`, `read`, `write`; an `ask` call once confirmed) in its working directory, posts each
result as a `user.tool_result`, and when the turn has ended (or the session terminated)
stops the item and polls again. Every request goes through `qca.AsyncManaged`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import qca
from qca.managed.types import SelfHostedWork

LEASE_SECONDS = 10
RUNNABLE = ("bash", "read", "write")


@dataclass
class SessionState:
    """What the worker knows of a session from its events (history, then the stream)."""

    seen: set[str] = field(default_factory=set)
    calls: dict[str, Any] = field(default_factory=dict)  # agent.tool_use by id, in order
    answered: set[str] = field(default_factory=set)
    confirmed: dict[str, str] = field(default_factory=dict)  # tool_use_id -> allow | deny
    last_status: Any = None
    terminated: bool = False

    def apply(self, event: Any) -> None:
        if event.id in self.seen:
            return
        self.seen.add(event.id)
        kind = event.type
        if kind == "agent.tool_use":
            self.calls[event.id] = event
        elif kind == "user.tool_result":
            self.answered.add(event.tool_use_id)
        elif kind == "user.tool_confirmation":
            self.confirmed[event.tool_use_id] = event.result
        elif kind in ("session.status_terminated", "session.deleted"):
            self.terminated = True
        if kind.startswith("session.status_"):
            self.last_status = event

    def runnable(self) -> list[Any]:
        out = []
        for call in self.calls.values():
            if call.id in self.answered or call.name not in RUNNABLE:
                continue
            permission = call.evaluated_permission or "allow"
            if permission == "allow" or self.confirmed.get(call.id) == "allow":
                out.append(call)
        return out

    def finished(self) -> bool:
        """The session ended, or its turn did (an idle that waits for nothing of ours)."""
        if self.terminated:
            return True
        status = self.last_status
        if status is None or status.type != "session.status_idle":
            return False
        reason = status.stop_reason.type if status.stop_reason is not None else "end_turn"
        return reason != "requires_action" and not self.runnable()


class QcaWorker:
    def __init__(
        self, base_url: str, environment_id: str, key: str, workdir: Path, worker_id: str
    ) -> None:
        self.client = qca.AsyncManaged(pat=key, base_url=base_url, max_retries=3)
        self.environment_id = environment_id
        self.workdir = workdir
        self.worker_id = worker_id
        self.items: list[str] = []  # work ids served, in order
        self.ran: list[tuple[str, dict[str, Any]]] = []  # (tool, input) of each call run
        self.errors: list[BaseException] = []

    @property
    def _me(self) -> dict[str, str]:
        return {"Worker-ID": self.worker_id}

    async def run(self, stop: asyncio.Event) -> None:
        work = self.client.environments.work
        while not stop.is_set():
            item = await work.poll(self.environment_id, block_ms=500, worker_id=self.worker_id)
            if item is None:
                continue
            try:
                await self.serve(item)
            except Exception as exc:  # kept for the test to report, and the loop goes on
                self.errors.append(exc)

    async def serve(self, item: SelfHostedWork) -> None:
        assert item.id is not None and item.data is not None and item.data.id is not None
        work = self.client.environments.work
        self.items.append(item.id)
        await work.ack(item.id, environment_id=self.environment_id, extra_headers=self._me)
        beat = await work.heartbeat(
            item.id,
            environment_id=self.environment_id,
            expected_last_heartbeat="NO_HEARTBEAT",
            desired_ttl_seconds=LEASE_SECONDS,
        )
        lease = asyncio.create_task(self._keep_lease(item.id, beat.last_heartbeat))
        try:
            session = await self.client.sessions.retrieve(item.data.id)
            if session.status != "terminated":
                await self._serve_session(item.data.id, lease)
        finally:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease
            with contextlib.suppress(qca.ConflictError):  # already stopped
                await work.stop(
                    item.id, environment_id=self.environment_id, force=True, extra_headers=self._me
                )

    async def _keep_lease(self, work_id: str, last: str | None) -> None:
        work = self.client.environments.work
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            beat = await work.heartbeat(
                work_id,
                environment_id=self.environment_id,
                expected_last_heartbeat=last,
                desired_ttl_seconds=LEASE_SECONDS,
            )
            last = beat.last_heartbeat

    async def _serve_session(self, session_id: str, lease: asyncio.Task[None]) -> None:
        events = self.client.sessions.events
        state = SessionState()
        # The stream first, then the history: nothing committed in between is missed.
        stream = await events.stream(session_id)
        try:
            async for event in events.list(session_id, limit=1000):
                state.apply(event)
            await self._run_calls(session_id, state)
            if state.finished():
                return
            async for event in stream:
                if lease.done():  # the lease is lost: the item is someone else's now
                    return
                state.apply(event)
                await self._run_calls(session_id, state)
                if state.finished():
                    return
        finally:
            await stream.close()

    async def _run_calls(self, session_id: str, state: SessionState) -> None:
        for call in state.runnable():
            output, is_error = await self._run_tool(call.name, call.input or {})
            self.ran.append((call.name, dict(call.input or {})))
            await self.client.sessions.events.send(
                session_id,
                events=[
                    {
                        "type": "user.tool_result",
                        "tool_use_id": call.id,
                        "is_error": is_error,
                        "content": [{"type": "text", "text": output or "(no output)"}],
                    }
                ],
            )
            state.answered.add(call.id)

    async def _run_tool(self, name: str, given: dict[str, Any]) -> tuple[str, bool]:
        try:
            if name == "bash":
                proc = await asyncio.create_subprocess_shell(
                    str(given["command"]),
                    cwd=self.workdir,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
                out, _ = await asyncio.wait_for(proc.communicate(), 60)
                return out.decode(errors="replace"), proc.returncode != 0
            path = self.workdir / str(given["file_path"])
            if name == "write":
                path.write_text(str(given["content"]))
                return f"wrote {len(str(given['content']))} characters", False
            return path.read_text(), False
        except (OSError, KeyError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}", True


@contextmanager
def running(worker: QcaWorker) -> Iterator[QcaWorker]:
    """The worker's loop in a thread of its own until the block ends."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        task = asyncio.create_task(worker.run(stop))
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.client.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
