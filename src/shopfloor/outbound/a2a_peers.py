"""Outbound calls to remote A2A agents: fetch an agent card, send a message. Bounded in time
(one timeout per request) and size (a reply is read as a stream and given up past a limit);
redirects are followed only within the same origin (at most 3), never to another host; a card
fetch is tried twice after a lost connection, a message is sent once; only http(s) URLs, and
only to the hosts SHOPFLOOR_A2A_ALLOWED_HOSTS names, if set. Every failure is a PeerError
whose message says what went wrong."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

CARD_PATH = "/.well-known/agent-card.json"
MAX_CARD_BYTES = 256 * 1024
MAX_REPLY_BYTES = 1024 * 1024
MAX_REDIRECTS = 3
MAX_SKILLS = 100
# A card fetch (a GET) is tried again once after a lost connection; a message is sent once
# (message/send is not idempotent: a retry could queue the task twice).
CARD_ATTEMPTS = 2


class PeerError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class A2aPeers:
    def __init__(
        self, *, timeout_seconds: float = 10.0, allowed_hosts: frozenset[str] | None = None
    ) -> None:
        self.allowed_hosts = allowed_hosts
        self._client = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch_card(self, url: str) -> dict[str, Any]:
        """The card at `url`, or at `url` + /.well-known/agent-card.json; checked and
        trimmed to what the registry keeps."""
        self._check(url)
        tried = [url] if url.endswith(".json") else [url.rstrip("/") + CARD_PATH, url]
        problem = "no agent card"
        for candidate in tried:
            try:
                return card_of(await self._get_card(candidate))
            except PeerError as exc:
                problem = exc.message
        raise PeerError(f"url: no valid agent card at {url} ({problem})")

    async def send(
        self, endpoint: str, text: str, metadata: dict[str, Any], token: str | None = None
    ) -> dict[str, Any]:
        """`message/send` to the agent's endpoint: its result (a Task or a Message)."""
        self._check(endpoint)
        body = {
            "jsonrpc": "2.0",
            "id": uuid.uuid4().hex,
            "method": "message/send",
            "params": {
                "message": {
                    "kind": "message",
                    "role": "user",
                    "messageId": uuid.uuid4().hex,
                    "parts": [{"kind": "text", "text": text}],
                    "metadata": metadata,
                }
            },
        }
        reply = await self._request("POST", endpoint, body, MAX_REPLY_BYTES)
        if not isinstance(reply, dict):
            raise PeerError("the agent's reply is not a JSON-RPC response")
        if isinstance(reply.get("error"), dict):
            raise PeerError(f"the agent answered an error: {reply['error'].get('message')}")
        result = reply.get("result")
        if not isinstance(result, dict):
            raise PeerError("the agent's reply has no result")
        return result

    async def _get_card(self, url: str) -> Any:
        for attempt in range(CARD_ATTEMPTS):
            try:
                return await self._request("GET", url, None, MAX_CARD_BYTES)
            except PeerError as exc:
                if not exc.message.startswith("unreachable") or attempt + 1 == CARD_ATTEMPTS:
                    raise
        raise PeerError("unreachable")

    def _check(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PeerError("url: an http or https URL is required")
        if self.allowed_hosts is not None and parts.hostname not in self.allowed_hosts:
            raise PeerError(f"url: host {parts.hostname} is not allowed")

    async def _request(self, method: str, url: str, body: Any, limit: int) -> Any:
        origin = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with self._client.stream(method, url, json=body) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        if _origin(url) != origin:
                            raise PeerError("redirected to another host: not followed")
                        continue
                    if response.status_code != 200:
                        raise PeerError(f"HTTP {response.status_code}")
                    raw = await _read(response, limit)
            except httpx.HTTPError as exc:
                raise PeerError(f"unreachable: {type(exc).__name__}") from None
            try:
                return json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                raise PeerError("the reply is not JSON") from None
        raise PeerError("too many redirects")


async def _read(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise PeerError(f"the reply is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def card_of(found: Any) -> dict[str, Any]:
    """The parts of an agent card the registry keeps, if `found` is a valid card."""
    if not isinstance(found, dict):
        raise PeerError("the card is not a JSON object")
    name, endpoint, skills = found.get("name"), found.get("url"), found.get("skills")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise PeerError("the card has no name")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https"):
        raise PeerError("the card has no http(s) url")
    if not isinstance(skills, list) or len(skills) > MAX_SKILLS:
        raise PeerError(f"the card's skills are not a list of at most {MAX_SKILLS}")
    kept = [_skill(s) for s in skills]
    description, version = found.get("description"), found.get("version")
    card = {
        "name": name,
        "url": endpoint,
        "version": version if isinstance(version, str) else None,
        "description": description if isinstance(description, str) else None,
        "skills": kept,
    }
    if "\\u0000" in json.dumps(card):  # PostgreSQL stores no NUL character
        raise PeerError("the card holds a NUL character")
    return card


def _skill(skill: Any) -> dict[str, Any]:
    if not isinstance(skill, dict) or not isinstance(skill.get("id"), str) or not skill["id"]:
        raise PeerError("a skill of the card has no id")
    kept = {k: skill[k] for k in ("id", "name", "description", "tags") if k in skill}
    if isinstance(skill.get("inputSchema"), dict):
        kept["inputSchema"] = skill["inputSchema"]
    return kept
