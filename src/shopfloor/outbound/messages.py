"""The model behind managed sessions: Anthropic's Messages API through the official `anthropic`
SDK (`AsyncAnthropic(base_url=…, api_key=…)`), so any Messages-compatible endpoint works (the
Anthropic API, a gateway, a local proxy, a stand-in server in tests).

Bounded in time (a total timeout per attempt, the SDK's own retries of 429/5xx and lost
connections, a few) and in size (the reply is read as a stream and given up past a limit).
Whatever comes back is checked before the agent loop sees it; every failure is a ModelError.

The request goes through the client's generic `post` with the body already serialized: the
typed `messages.create` walks and copies the whole body before sending it, and the body is
the whole conversation, so that cost grew with every round trip of a session (a profile of
twenty-round sessions: about as much as all of shopfloor's own work per round trip). Auth,
base URL, headers, timeouts and retries are the client's either way."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2  # the HTTP client the `anthropic` SDK is built on

from shopfloor.service.managed.model import (
    OVERLOADED,
    RATE_LIMITED,
    REQUEST_FAILED,
    ModelError,
    ModelReply,
    ModelRequest,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
MAX_REPLY_BYTES = 16 * 1024 * 1024
USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


class MessagesClient:
    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout_seconds: float = 600.0,
        max_retries: int = 2,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url or DEFAULT_BASE_URL
        self.timeout_seconds = timeout_seconds
        self.max_reply_bytes = max_reply_bytes
        self._client = anthropic.AsyncAnthropic(
            base_url=self.base_url,
            api_key=api_key or "unset",
            timeout=timeout_seconds,
            max_retries=max_retries,
        )

    async def close(self) -> None:
        await self._client.close()

    async def create(self, request: ModelRequest) -> ModelReply:
        if not self.api_key:
            raise ModelError(
                REQUEST_FAILED,
                "No model API key is configured: set SHOPFLOOR_MODEL_API_KEY "
                "(or ANTHROPIC_API_KEY) on the server",
            )
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": request.messages,
        }
        if request.system:
            params["system"] = request.system
        if request.tools:
            params["tools"] = request.tools
        try:
            raw = await self._read(params)
        except anthropic.RateLimitError as exc:
            raise ModelError(RATE_LIMITED, _status_message(exc)) from None
        except anthropic.APIStatusError as exc:
            kind = OVERLOADED if exc.status_code == 529 else REQUEST_FAILED
            raise ModelError(kind, _status_message(exc)) from None
        except (anthropic.APITimeoutError, httpx2.TimeoutException):
            raise ModelError(
                REQUEST_FAILED,
                f"The model API at {self.base_url} did not answer within "
                f"{self.timeout_seconds:g} s",
            ) from None
        except (anthropic.APIConnectionError, httpx2.HTTPError) as exc:
            raise ModelError(
                REQUEST_FAILED, f"Could not reach the model API at {self.base_url}: {exc}"
            ) from None
        return parse_reply(raw)

    async def _read(self, params: dict[str, Any]) -> bytes:
        """The reply's body, read as it streams in and refused past the size limit."""
        response = await self._client.post(
            "/v1/messages",
            cast_to=httpx2.Response,
            content=json.dumps(params, separators=(",", ":")).encode(),
            options={"headers": {"content-type": "application/json"}},
            stream=True,
        )
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_reply_bytes:
                    raise ModelError(
                        REQUEST_FAILED,
                        f"The model API's reply is larger than {self.max_reply_bytes} bytes",
                    )
            return bytes(body)
        finally:
            await response.aclose()


def _status_message(exc: anthropic.APIStatusError) -> str:
    detail = exc.message if isinstance(exc.message, str) else str(exc)
    return f"The model API answered {exc.status_code}: {detail}"[:2000]


def parse_reply(raw: bytes) -> ModelReply:
    """A Messages API reply, checked: a JSON object with a list of content blocks whose
    text, thinking and tool_use blocks carry their fields, and a stop reason."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _garbage("its body is not JSON") from None
    if not isinstance(body, dict):
        raise _garbage("its body is not a JSON object")
    content = body.get("content")
    if not isinstance(content, list):
        raise _garbage("it has no content list")
    for block in content:
        _check_block(block)
    stop_reason = body.get("stop_reason") or "end_turn"
    if not isinstance(stop_reason, str):
        raise _garbage("stop_reason is not a string")
    usage_in = body.get("usage")
    if not isinstance(usage_in, dict):
        usage_in = {}
    usage = {
        k: int(v)
        for k, v in usage_in.items()
        if k in USAGE_KEYS and isinstance(v, int) and not isinstance(v, bool) and v >= 0
    }
    return ModelReply(content=content, stop_reason=stop_reason, usage=usage)


_REQUIRED: dict[str, tuple[tuple[str, type], ...]] = {
    "text": (("text", str),),
    "thinking": (("thinking", str),),
    "redacted_thinking": (("data", str),),
    "tool_use": (("id", str), ("name", str), ("input", dict)),
}


def _check_block(block: Any) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise _garbage("a content block is not an object with a type")
    for name, kind in _REQUIRED.get(block["type"], ()):
        if not isinstance(block.get(name), kind):
            raise _garbage(f"a {block['type']} block has no valid {name}")


def _garbage(why: str) -> ModelError:
    return ModelError(REQUEST_FAILED, f"The model API answered with a malformed message: {why}")
