"""The console's form posts: sign in, sign out, and stop / prompt / nudge a session. Each
passes the same checks as the operator API's routes (scope `sessions:write`, the session in
the key's organisation and projects) and goes through the same service calls."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from shopfloor.api.state import services
from shopfloor.console.auth import (
    csrf_ok,
    current_login,
    forget_login,
    form_fields,
    keep_login,
    same_origin,
)
from shopfloor.console.pages import denied, to_login, visible
from shopfloor.console.render import page
from shopfloor.service.console_logins import ConsoleLogin
from shopfloor.service.errors import DomainError

router = APIRouter(include_in_schema=False)  # pages, not API
CONSOLE_USER = "console"
MAX_PROMPT = 100_000
MAX_REASON = 2_000


@router.get("/console/login")
async def login_form(request: Request) -> Response:
    if await current_login(request) is not None:
        return RedirectResponse("/console/", status_code=303)
    return page("login.html", login=None, error=None)


@router.post("/console/login")
async def sign_in(request: Request) -> Response:
    if not same_origin(request):
        return page("login.html", 403, login=None, error="Cross-site sign-in refused.")
    fields = await form_fields(request)
    signed = await services(request).console_logins.sign_in(fields.get("key", ""))
    if signed is None:
        error = "Not a usable admin key or organisation API key."
        return page("login.html", 401, login=None, error=error)
    token, login = signed
    if not login.who.may("sessions:read"):
        error = "This key lacks the sessions:read scope the console needs."
        return page("login.html", 403, login=None, error=error)
    response = RedirectResponse("/console/", status_code=303)
    keep_login(response, request, token)
    return response


@router.post("/console/logout")
async def sign_out(request: Request) -> Response:
    login = await current_login(request)
    fields = await form_fields(request)
    if login is not None and not (same_origin(request) and csrf_ok(login, fields)):
        return page("error.html", 403, login=login, message="Form expired: reload the page.")
    response = RedirectResponse("/console/login", status_code=303)
    forget_login(response)
    return response


@router.post("/console/sessions/{session_id}/{action}")
async def act(request: Request, session_id: str, action: str) -> Response:
    login = await current_login(request)
    if login is None:
        return to_login()
    fields = await form_fields(request)
    if not (same_origin(request) and csrf_ok(login, fields)):
        return page("error.html", 403, login=login, message="Form expired: reload the page.")
    if action not in ("stop", "prompt", "nudge"):
        return page("error.html", 404, login=login, message="No such action.")
    if not login.who.may("sessions:write"):
        return denied(login, "sessions:write")
    if await visible(request, login, session_id) is None:
        return page("error.html", 404, login=login, message="No such session.")
    try:
        notice = await _do(request, login, session_id, action, fields)
    except DomainError as exc:
        notice = exc.message
    target = f"/console/sessions/{quote(session_id)}?notice={quote(notice)}"
    return RedirectResponse(target, status_code=303)


async def _do(
    request: Request, login: ConsoleLogin, session_id: str, action: str, fields: dict[str, str]
) -> str:
    svc = services(request)
    channel = svc.dispatcher.channel
    sender = {"user_id": login.who.identity, "user_name": CONSOLE_USER}
    if action == "stop":
        reason = fields.get("reason", "").strip()[:MAX_REASON] or None
        await channel.stop(session_id, reason, **sender)
        await svc.managed.terminate(session_id)
        return "Stopped."
    text = fields.get("text", "").strip()
    if action == "prompt":
        if not text or len(text) > MAX_PROMPT:
            return f"text: a prompt is 1 to {MAX_PROMPT} characters"
        await channel.send(session_id, "directive", text, **sender)
        return "Prompt queued for the worker."
    await channel.send(session_id, "nudge", text[:10_000], **sender)
    return "Nudge queued for the worker."
