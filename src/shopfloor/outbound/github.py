"""GitHub's REST API, for one call: an installation access token of a GitHub App, narrowed to
one repository (`POST /app/installations/{id}/access_tokens`, authenticated by a JWT the
server signs with the App's private key, RS256). The base URL is a setting: GitHub
Enterprise, or a stand-in server in tests. Bounded in time and size; every failure is a
GitHubError whose message never holds a secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import httpx
import jwt

DEFAULT_API_URL = "https://api.github.com"
TIMEOUT_SECONDS = 10.0
MAX_REPLY_BYTES = 64 * 1024
# GitHub refuses an App JWT that lives longer than ten minutes; iat is set back a minute for
# clocks that differ.
JWT_LIFETIME_SECONDS = 540
CLOCK_SKEW_SECONDS = 60


class GitHubError(Exception):
    """The token could not be had; the message says why, without any secret."""


@dataclass(frozen=True)
class InstallationToken:
    token: str
    expires_at_ms: int


def app_jwt(app_id: str, private_key_pem: str, now_s: int) -> str:
    claims = {
        "iat": now_s - CLOCK_SKEW_SECONDS,
        "exp": now_s + JWT_LIFETIME_SECONDS,
        "iss": app_id,
    }
    try:
        return jwt.encode(claims, private_key_pem, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise GitHubError(f"the App's private key cannot sign ({type(exc).__name__})") from None


async def installation_token(
    api_url: str,
    app_id: str,
    private_key_pem: str,
    installation_id: str,
    repository: str,
    now_s: int,
) -> InstallationToken:
    """A token of the installation that can reach `repository` (its name, without owner)."""
    signed = app_jwt(app_id, private_key_pem, now_s)
    url = f"{api_url.rstrip('/')}/app/installations/{installation_id}/access_tokens"
    headers = {
        "Authorization": f"Bearer {signed}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            reply = await client.post(url, headers=headers, json={"repositories": [repository]})
    except httpx.HTTPError as exc:
        raise GitHubError(f"GitHub API unreachable ({type(exc).__name__})") from None
    if reply.status_code != 201:
        raise GitHubError(
            f"GitHub API answered {reply.status_code} for installation {installation_id}"
        )
    if len(reply.content) > MAX_REPLY_BYTES:
        raise GitHubError("GitHub API reply too large")
    return _token(reply)


def _token(reply: httpx.Response) -> InstallationToken:
    try:
        body = reply.json()
        token, expires = body["token"], body["expires_at"]
        if not isinstance(token, str) or not token or not isinstance(expires, str):
            raise ValueError
        at = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        raise GitHubError("GitHub API reply has no token and expiry") from None
    return InstallationToken(token, int(at.timestamp() * 1000))
