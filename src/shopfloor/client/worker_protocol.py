"""The AgentFactory worker protocol, client side (asyncio): every call the TypeScript
`af-worker` makes (agentfactory-rensei.md §2), plus the Go daemon's runtime-JWT refresh and
nack (§6).

Credentials: the fleet's static worker key is sent on every call. A registration token
(`rsk_live_…` / `rsp_live_…`) is sent only to register and to refresh; registration hands
back a runtime JWT for everything else, and a call answered `401 Runtime token expired` is
retried once after `POST /api/workers/{id}/refresh-token`.

Transport: a call that fails on the wire, or answers 5xx, is tried again after a jittered,
growing delay, up to its number of attempts; then `Unreachable`. A 4xx is never retried
(`WorkerNotFound`, `NotOwner`, or `ApiError`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from shopfloor.client.backoff import backoff_delay
from shopfloor.client.errors import ApiError, Unreachable, api_error
from shopfloor.client.worker_types import (
    PollReply,
    Registration,
    SessionState,
    Transfer,
    WorkItem,
)

REGISTRATION_PREFIXES = ("rsk_live_", "rsp_live_")
TOKEN_EXPIRED = "Runtime token expired"
PROTOCOL_VERSION = "1.0.0"  # what the TS af-worker sends as `version`


def is_registration_token(key: str) -> bool:
    return key.startswith(REGISTRATION_PREFIXES)


class WorkerProtocolClient:
    """One worker's view of the protocol. `worker_id` is set by `register` (and changes
    when the worker registers again)."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = 30.0,
        attempts: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.key = key
        self.registration_token = key if is_registration_token(key) else None
        self.runtime_token: str | None = None
        self.runtime_token_expires_at: int | None = None  # epoch ms
        self.worker_id: str | None = None
        self.attempts = attempts
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )
        self._refreshing: asyncio.Lock = asyncio.Lock()
        # Closed while the worker registers again: calls that name the worker wait for its
        # new id (see `hold`).
        self._ready = asyncio.Event()
        self._ready.set()

    async def aclose(self) -> None:
        await self._http.aclose()

    def set_key(self, key: str) -> None:
        self.key = key
        self.registration_token = key if is_registration_token(key) else None
        self.runtime_token = None
        self.runtime_token_expires_at = None

    def hold(self) -> None:
        """Calls that name this worker wait until `release`: while the worker registers
        again and moves its sessions to the new id, none goes out under either id."""
        self._ready.clear()

    def release(self) -> None:
        self._ready.set()

    # -- transport --

    def _bearer(self, use_key: bool) -> str:
        if use_key or self.runtime_token is None:
            return self.key
        return self.runtime_token

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        use_key: bool = False,
        attempts: int | None = None,
        read_timeout: float | None = None,
    ) -> Any:
        tries = attempts or self.attempts
        attempt = 0
        refreshed = False
        while True:
            token = self._bearer(use_key)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            extra: dict[str, Any] = {} if read_timeout is None else {"timeout": read_timeout}
            try:
                reply = await self._http.request(method, path, json=body, headers=headers, **extra)
            except httpx.TransportError as exc:
                attempt += 1
                if attempt >= tries:
                    raise Unreachable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(backoff_delay(attempt - 1))
                continue
            if reply.status_code >= 500:
                attempt += 1
                if attempt >= tries:
                    raise Unreachable(f"{method} {path}: {reply.status_code} {reply.text[:200]}")
                await asyncio.sleep(backoff_delay(attempt - 1))
                continue
            if (
                reply.status_code == 401
                and TOKEN_EXPIRED in reply.text
                and not use_key
                and not refreshed
                and self.registration_token is not None
            ):
                refreshed = True
                await self._refresh_after_expiry(token)
                continue
            if reply.status_code >= 400:
                raise api_error(reply)
            try:
                return reply.json()
            except ValueError:
                raise ApiError(reply.status_code, f"{method} {path}: reply is not JSON") from None

    async def _refresh_after_expiry(self, expired: str) -> None:
        async with self._refreshing:
            if self.runtime_token != expired:
                return  # another call refreshed it meanwhile
            await self.refresh_token()

    # -- workers --

    async def register(
        self, hostname: str, capacity: int, projects: list[str] | None = None
    ) -> Registration:
        body: dict[str, Any] = {
            "hostname": hostname,
            "capacity": capacity,
            "version": PROTOCOL_VERSION,
        }
        if projects:
            body["projects"] = projects
        reply = Registration.of(
            await self.call("POST", "/api/workers/register", body, use_key=True)
        )
        self.worker_id = reply.worker_id
        self.runtime_token = reply.runtime_token
        self.runtime_token_expires_at = reply.runtime_token_expires_at
        return reply

    def _me(self) -> str:
        if self.worker_id is None:
            raise RuntimeError("register first")
        return self.worker_id

    async def _id(self) -> str:
        """This worker's id, once no re-registration is under way."""
        await self._ready.wait()
        return self._me()

    async def config(self) -> list[str]:
        body = await self.call("GET", "/api/config")
        projects = body.get("projects") if isinstance(body, dict) else None
        return [p for p in projects if isinstance(p, str)] if isinstance(projects, list) else []

    async def heartbeat(self, active_count: int, load: dict[str, float]) -> dict[str, Any]:
        body = {"activeCount": active_count, "load": load}
        reply: dict[str, Any] = await self.call(
            "POST", f"/api/workers/{await self._id()}/heartbeat", body, attempts=1
        )
        return reply

    async def poll(self, read_timeout: float | None = None) -> PollReply:
        body = await self.call(
            "GET", f"/api/workers/{await self._id()}/poll", read_timeout=read_timeout
        )
        return PollReply.of(body)

    async def refresh_token(self) -> None:
        """A new runtime JWT, asked for with the registration token."""
        if self.registration_token is None:
            return
        body = await self.call("POST", f"/api/workers/{self._me()}/refresh-token", {}, use_key=True)
        reply = Registration.of({"workerId": self._me(), **body})
        self.runtime_token = reply.runtime_token
        self.runtime_token_expires_at = reply.runtime_token_expires_at

    def token_expires_in(self) -> float | None:
        """Seconds until the runtime JWT expires (None without one)."""
        if self.runtime_token is None or self.runtime_token_expires_at is None:
            return None
        return self.runtime_token_expires_at / 1000 - time.time()

    async def deregister(self) -> list[str]:
        body = await self.call("DELETE", f"/api/workers/{await self._id()}")
        unclaimed = body.get("unclaimedSessions") if isinstance(body, dict) else None
        return [s for s in unclaimed if isinstance(s, str)] if isinstance(unclaimed, list) else []

    # -- sessions --

    async def claim(self, session_id: str) -> bool:
        body = await self.call(
            "POST", f"/api/sessions/{session_id}/claim", {"workerId": await self._id()}
        )
        return bool(body.get("claimed"))

    async def report_status(
        self, session_id: str, status: str, *, attempts: int | None = None, **extra: Any
    ) -> dict[str, Any]:
        body = {"workerId": await self._id(), "status": status}
        body.update({k: v for k, v in extra.items() if v is not None})
        reply: dict[str, Any] = await self.call(
            "POST", f"/api/sessions/{session_id}/status", body, attempts=attempts
        )
        return reply

    async def session_status(self, session_id: str) -> SessionState:
        return SessionState.of(await self.call("GET", f"/api/sessions/{session_id}/status"))

    async def progress(
        self, session_id: str, milestone: str, message: str, *, attempts: int | None = None
    ) -> None:
        body = {"workerId": await self._id(), "milestone": milestone, "message": message}
        await self.call("POST", f"/api/sessions/{session_id}/progress", body, attempts=attempts)

    async def activity(
        self, session_id: str, activity: dict[str, Any], *, attempts: int | None = None
    ) -> None:
        body = {"workerId": await self._id(), "activity": activity}
        await self.call("POST", f"/api/sessions/{session_id}/activity", body, attempts=attempts)

    async def completion(
        self, session_id: str, summary: str, *, attempts: int | None = None
    ) -> None:
        body = {"workerId": await self._id(), "summary": summary}
        await self.call("POST", f"/api/sessions/{session_id}/completion", body, attempts=attempts)

    async def mcp_token(self, session_id: str, *, attempts: int | None = None) -> dict[str, Any]:
        """The session's MCP endpoint and a token for it, to hand the agent."""
        body = {"workerId": await self._id()}
        reply: dict[str, Any] = await self.call(
            "POST", f"/api/sessions/{session_id}/mcp-token", body, attempts=attempts
        )
        return reply

    async def lock_refresh(self, session_id: str, issue_id: str) -> dict[str, Any]:
        body = {"workerId": await self._id(), "issueId": issue_id}
        reply: dict[str, Any] = await self.call(
            "POST", f"/api/sessions/{session_id}/lock-refresh", body
        )
        return reply

    async def inbox_ack(
        self, session_id: str, message_id: str, lane: str, *, attempts: int | None = None
    ) -> bool:
        body = {"workerId": await self._id(), "messageId": message_id, "lane": lane}
        reply = await self.call(
            "POST", f"/api/sessions/{session_id}/inbox/ack", body, attempts=attempts
        )
        return bool(reply.get("acknowledged"))

    async def reserve_files(
        self, session_id: str, paths: list[str], reason: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"workerId": await self._id(), "filePaths": paths}
        if reason:
            body["reason"] = reason
        reply: dict[str, Any] = await self.call(
            "POST", f"/api/sessions/{session_id}/files/reserve", body
        )
        return reply

    async def check_file_conflicts(self, session_id: str, paths: list[str]) -> list[Any]:
        body = {"workerId": await self._id(), "filePaths": paths}
        reply = await self.call("POST", f"/api/sessions/{session_id}/files/check-conflicts", body)
        conflicts = reply.get("conflicts")
        return conflicts if isinstance(conflicts, list) else []

    async def release_files(self, session_id: str, paths: list[str]) -> int:
        body = {"workerId": await self._id(), "filePaths": paths}
        reply = await self.call("POST", f"/api/sessions/{session_id}/files/release", body)
        return int(reply.get("released") or 0)

    async def release_all_files(self, session_id: str, *, attempts: int | None = None) -> int:
        body = {"workerId": await self._id()}
        reply = await self.call(
            "POST", f"/api/sessions/{session_id}/files/release-all", body, attempts=attempts
        )
        return int(reply.get("released") or 0)

    async def recovery_packet(
        self, session_id: str, *, attempts: int | None = None
    ) -> dict[str, Any] | None:
        """The session's newest crash-recovery packet, if it has one."""
        reply = await self.call("GET", f"/api/sessions/{session_id}/recovery", attempts=attempts)
        packet = reply.get("packet") if reply.get("found") else None
        return packet if isinstance(packet, dict) else None

    async def transfer_ownership(
        self, session_id: str, old_worker_id: str, new_worker_id: str
    ) -> Transfer:
        body = {"newWorkerId": new_worker_id, "oldWorkerId": old_worker_id}
        reply = await self.call("POST", f"/api/sessions/{session_id}/transfer-ownership", body)
        reason = reply.get("reason")
        return Transfer(bool(reply.get("transferred")), reason if isinstance(reason, str) else None)

    async def nack(self, item: WorkItem, reason: str) -> None:
        body = {"workerId": await self._id(), "reason": reason, "work": item.raw}
        await self.call("POST", f"/api/sessions/{item.session_id}/nack", body)
