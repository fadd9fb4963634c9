"""Who is signed in to the console: the login cookie (HttpOnly, SameSite=Strict; an opaque
token, never the key), and the CSRF check every form post passes."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from fastapi.responses import Response

from shopfloor.api.state import services
from shopfloor.service.console_logins import LOGIN_TTL_MS, ConsoleLogin

COOKIE = "shopfloor_console"
MAX_FIELD = 100_000


async def current_login(request: Request) -> ConsoleLogin | None:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 4096:
        return None
    return await services(request).console_logins.resume(token)


def keep_login(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=LOGIN_TTL_MS // 1000,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def forget_login(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the last value of each), as strings."""
    raw = await request.body()
    try:
        parsed = parse_qs(raw.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[-1] for k, v in parsed.items() if len(v[-1]) <= MAX_FIELD}


def same_origin(request: Request) -> bool:
    """A browser's post names its page's origin; one from another site is refused (the
    SameSite cookie already keeps it signed out; this also covers the sign-in form)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def csrf_ok(login: ConsoleLogin, fields: dict[str, str]) -> bool:
    return hmac.compare_digest(fields.get("csrf", "").encode(), login.csrf.encode())
