"""A minimal keep-alive HTTP/1.1 client on asyncio streams.

The load generator shares the 2-core machine with the server under test, so it must cost as
little CPU per request as possible: no connection pool, no header objects, one socket per
simulated worker, Content-Length bodies only (what uvicorn sends for JSON responses)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any


class HttpError(Exception):
    pass


class HttpConn:
    def __init__(
        self,
        host: str,
        port: int,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
        source: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.host = host
        self.port = port
        # The local address to connect from (another loopback address, 127.0.0.2, … has
        # ephemeral ports of its own); None: the kernel's choice.
        self.source = source
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._fixed = f"Host: {host}:{port}\r\n{extra}".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.requests = 0

    @classmethod
    def for_url(
        cls, url: str, headers: dict[str, str] | None = None, source: str | None = None
    ) -> HttpConn:
        hostport = url.split("://", 1)[1].rstrip("/")
        host, port = hostport.rsplit(":", 1)
        return cls(host, int(port), headers, source=source)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            local = None if self.source is None else (self.source, 0)
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, local_addr=local
            )
        return self._reader, self._writer

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        reused = self._writer is not None
        try:
            async with asyncio.timeout(self.timeout):
                return await self._request(method, path, body)
        except TimeoutError:
            await self.close()
            raise HttpError(f"no response in {self.timeout:g}s to {method} {path}") from None
        except (HttpError, ConnectionError):
            if not reused:
                raise
        # uvicorn closes a keep-alive connection idle for 5 s; a polling worker that slept
        # longer than that reconnects and sends again, as an HTTP client library would.
        await self.close()
        async with asyncio.timeout(self.timeout):
            return await self._request(method, path, body)

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        reader, writer = await self._connect()
        if body is None:
            payload = b""
            head = f"{method} {path} HTTP/1.1\r\n".encode() + self._fixed
            if method in ("POST", "PUT"):
                head += b"Content-Length: 0\r\n"
        else:
            payload = json.dumps(body).encode()
            head = (
                f"{method} {path} HTTP/1.1\r\n".encode()
                + self._fixed
                + f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n".encode()
            )
        writer.write(head + b"\r\n" + payload)
        status_line = await reader.readline()
        if not status_line:
            await self.close()
            raise HttpError(f"connection closed by server on {method} {path}")
        self.requests += 1
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        data = await reader.readexactly(length) if length else b""
        return status, (json.loads(data) if data else None)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """A request that must succeed (2xx); returns the decoded JSON body."""
        status, data = await self.request(method, path, body)
        if status >= 300:
            raise HttpError(f"{method} {path} -> {status}: {data}")
        return data

    @property
    def local_port(self) -> int | None:
        """This end's port while connected (which server process holds it: see server.py)."""
        if self._writer is None:
            return None
        name = self._writer.get_extra_info("sockname")
        return int(name[1]) if name else None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None
