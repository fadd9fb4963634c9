"""One agent process: started in its own process group (so a stop reaches its children too),
its stdout and stderr read as bounded lines, stopped with SIGTERM and then SIGKILL.

Bounds: a line longer than `MAX_LINE` bytes is cut (the rest of it skipped); once the
process has written `max_output` bytes in all, reading stops and `flooded` is set (the
session then stops it). Lines wait in a small queue, so an agent that writes faster than the
worker reads is slowed down by its own pipe instead of growing the worker's memory.

On Linux the agent also gets SIGKILL when the worker dies (PR_SET_PDEATHSIG), so a worker
killed outright leaves no agent writing into a worktree that another worker is given."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from shopfloor.worker.agents import Launch

MAX_LINE = 1024 * 1024  # a Claude Code event carrying a large tool result fits
CHUNK = 64 * 1024
PR_SET_PDEATHSIG = 1


def _death_signal() -> Callable[[], None] | None:
    """What the child runs before exec (Linux only): die with the worker. The C function is
    looked up here, in the parent, so the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    return arm


_ARM = _death_signal()


class AgentProcess:
    def __init__(self, proc: asyncio.subprocess.Process, max_output: int) -> None:
        self.proc = proc
        self.max_output = max_output
        self.bytes_read = 0
        self.flooded = False
        self.lines: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue(maxsize=256)
        self._readers = [
            asyncio.create_task(self._read("stdout", proc.stdout)),
            asyncio.create_task(self._read("stderr", proc.stderr)),
        ]
        self._feeder: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, launch: Launch, cwd: Path, max_output: int) -> AgentProcess:
        """Raises OSError (FileNotFoundError, PermissionError, …) if it cannot start."""
        wants_stdin = launch.stdin_text is not None or launch.stdin_json
        proc = await asyncio.create_subprocess_exec(
            *launch.argv,
            cwd=cwd,
            env=launch.env,
            stdin=asyncio.subprocess.PIPE if wants_stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_ARM,
        )
        agent = cls(proc, max_output)
        if launch.stdin_text is not None:
            agent._feeder = asyncio.create_task(agent._feed_and_close(launch.stdin_text))
        return agent

    @property
    def pid(self) -> int:
        return self.proc.pid

    # -- input --

    async def _feed_and_close(self, text: str) -> None:
        await self.write(text.encode())
        await self.close_stdin()

    async def write(self, data: bytes) -> bool:
        """Write to the agent's stdin; False if it is closed (the agent stopped reading)."""
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            return False
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    async def close_stdin(self) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await stdin.wait_closed()

    # -- output --

    async def _read(self, name: str, stream: asyncio.StreamReader | None) -> None:
        """Put the stream's lines on the queue, then `(name, None)` at its end, or as soon
        as the output limit is passed (what follows is read and dropped: a pipe left unread
        would keep the process from being reaped)."""
        ended = False
        try:
            if stream is not None:
                await self._split(name, stream)
            ended = True
            await self.lines.put((name, None))
            if stream is not None:
                while await stream.read(CHUNK):
                    pass
        finally:
            if not ended:
                await self.lines.put((name, None))

    async def _split(self, name: str, stream: asyncio.StreamReader) -> None:
        buf = b""
        skipping = False  # inside a line that was already cut
        while True:
            chunk = await stream.read(CHUNK)
            if not chunk:
                break
            self.bytes_read += len(chunk)
            if self.bytes_read > self.max_output:
                self.flooded = True
                return
            buf += chunk
            while (end := buf.find(b"\n")) >= 0:
                line, buf = buf[:end], buf[end + 1 :]
                if skipping:
                    skipping = False
                else:
                    await self.lines.put((name, line.decode(errors="replace")))
            if len(buf) > MAX_LINE:
                if not skipping:
                    cut = buf[:MAX_LINE].decode(errors="ignore")
                    await self.lines.put((name, cut + " … [line cut]"))
                buf, skipping = b"", True
        if buf and not skipping:
            await self.lines.put((name, buf.decode(errors="replace")))

    # -- ending --

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def terminate(self, grace: float) -> None:
        """SIGTERM to the agent's process group; SIGKILL if it is still there after `grace`."""
        if self.proc.returncode is None:
            self.signal_group(signal.SIGTERM)
            if not await self.exited(grace):
                self.signal_group(signal.SIGKILL)
        await self.close()

    async def exited(self, within: float | None = None) -> bool:
        """Wait for the process to exit (not for its pipes, which a child it left behind may
        still hold: asyncio's `Process.wait` waits for both)."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        pause = 0.02
        while self.proc.returncode is None:
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)
        return True

    async def close(self, linger: float = 2.0) -> None:
        """After the process exited: give its pipes `linger` seconds to end, then kill
        whatever of its group still holds them, and stop reading."""
        await self.exited()
        readers = [r for r in self._readers if not r.done()]
        if readers:
            _, pending = await asyncio.wait(readers, timeout=linger)
            if pending:
                self.signal_group(signal.SIGKILL)
                _, pending = await asyncio.wait(pending, timeout=linger)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        if self._feeder is not None and not self._feeder.done():
            self._feeder.cancel()
            await asyncio.gather(self._feeder, return_exceptions=True)
        await self.close_stdin()
