"""Ed25519 signatures made in a child process, so that the appender's signing (half of an
audit entry's cost) runs on another core instead of the event loop that serves requests.

Why not a thread: pyca/cryptography releases the GIL while it signs, but the thread must
take the GIL back after every signature, and on a busy loop those hand-offs cost the loop
about as much as signing there would (measured: 4,000 signatures in a thread took a busy
loop's thread 10 % of a second, for 0.115 s of signing). A batch's digests go to the child
in one write and come back in one read instead.

The child speaks binary over its stdin and stdout: a request is the 32-byte raw private
key, a 4-byte big-endian count N and N 32-byte digests; the answer is N 64-byte signatures.
It exits at the end of its input, so it never outlives the server process that started it.
If it cannot be started or fails, the batch is signed in-process and the child is tried
again after a pause: signing never fails for want of the child."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

log = logging.getLogger("shopfloor.audit")

KEY_BYTES = 32
COUNT_BYTES = 4
DIGEST_BYTES = 32
SIGNATURE_BYTES = 64
RETRY_AFTER_S = 30.0  # after the child failed, sign in-process this long before a new one
ANSWER_TIMEOUT_S = 10.0


class Signer:
    """Signs batches of digests in the child process (started on first use)."""

    def __init__(self, command: list[str] | None = None) -> None:
        self.command = command or [sys.executable, "-m", "shopfloor.service.audit_signer"]
        self._child: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self.signed_elsewhere = 0  # signatures the child made (for the tests and metrics)

    async def sign(self, key: Ed25519PrivateKey, digests: list[bytes]) -> list[bytes]:
        """The signatures of `digests`, in order."""
        async with self._lock:
            child = await self._running_child()
            if child is not None:
                try:
                    signatures = await asyncio.wait_for(
                        self._ask(child, key, digests), ANSWER_TIMEOUT_S
                    )
                    self.signed_elsewhere += len(signatures)
                    return signatures
                except (TimeoutError, OSError, EOFError, ValueError) as exc:
                    log.warning("audit signer process failed (%r); signing in-process", exc)
                    await self._stop()
                    self._retry_at = time.monotonic() + RETRY_AFTER_S
                except BaseException:
                    # Cancelled mid-request: its answer would be read as the next one's.
                    self._kill()
                    raise
        return [key.sign(d) for d in digests]

    async def close(self) -> None:
        async with self._lock:
            await self._stop()

    async def _running_child(self) -> asyncio.subprocess.Process | None:
        if self._child is not None and self._child.returncode is None:
            return self._child
        if time.monotonic() < self._retry_at:
            return None
        try:
            self._child = await asyncio.create_subprocess_exec(
                *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            log.warning("audit signer process not started (%r); signing in-process", exc)
            self._child, self._retry_at = None, time.monotonic() + RETRY_AFTER_S
        return self._child

    @staticmethod
    async def _ask(
        child: asyncio.subprocess.Process, key: Ed25519PrivateKey, digests: list[bytes]
    ) -> list[bytes]:
        assert child.stdin is not None and child.stdout is not None
        if any(len(d) != DIGEST_BYTES for d in digests):
            raise ValueError("a digest is not 32 bytes")
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        child.stdin.write(raw + len(digests).to_bytes(COUNT_BYTES, "big") + b"".join(digests))
        await child.stdin.drain()
        try:
            answer = await child.stdout.readexactly(SIGNATURE_BYTES * len(digests))
        except asyncio.IncompleteReadError as exc:
            raise EOFError("the signer process ended") from exc
        return [answer[i : i + SIGNATURE_BYTES] for i in range(0, len(answer), SIGNATURE_BYTES)]

    def _kill(self) -> None:
        child, self._child = self._child, None
        if child is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()

    async def _stop(self) -> None:
        child, self._child = self._child, None
        if child is None or child.returncode is not None:
            return
        assert child.stdin is not None
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), 2.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    """`size` bytes, or None at the end of the input (before or within them)."""
    data = stream.read(size)
    return data if len(data) == size else None


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The child's loop: answer each request until the input ends."""
    while (head := _read_exactly(requests, KEY_BYTES + COUNT_BYTES)) is not None:
        key = Ed25519PrivateKey.from_private_bytes(head[:KEY_BYTES])
        count = int.from_bytes(head[KEY_BYTES:], "big")
        body = _read_exactly(requests, DIGEST_BYTES * count)
        if body is None:
            return
        answers.write(
            b"".join(
                key.sign(body[i : i + DIGEST_BYTES]) for i in range(0, len(body), DIGEST_BYTES)
            )
        )
        answers.flush()


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group; the child ends when its parent closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
