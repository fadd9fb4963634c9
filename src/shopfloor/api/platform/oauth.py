"""`POST /api/oauth/token`: the OAuth 2.0 client_credentials grant (RFC 6749 §4.4) for M2M
clients. The client authenticates with HTTP Basic or with `client_id` and `client_secret` in
the body, which may be form-encoded (the RFC's) or JSON (the platform's); the reply is a
short-lived access token. Errors are the RFC's `{"error", "error_description"}`."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shopfloor.api.openapi import ErrorBody, errors, json_body, ok, tag
from shopfloor.api.state import services
from shopfloor.service.auth import InvalidClient, InvalidScope

OAUTH = tag(
    "OAuth 2.0",
    "The client_credentials grant for M2M clients: client authentication by HTTP Basic or in "
    "the body (form-encoded or JSON). Errors are RFC 6749's "
    '`{"error": "invalid_request" | "invalid_client" | "unsupported_grant_type" | '
    '"invalid_scope", "error_description"}`.',
)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenRequest(BaseModel):
    grant_type: str = Field(description="client_credentials")
    client_id: str | None = Field(None, description="Unless sent with HTTP Basic")
    client_secret: str | None = Field(None, description="Unless sent with HTTP Basic")
    scope: str | None = Field(None, description="Space-separated; a subset of the client's")


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str


class OAuthError(BaseModel):
    error: str
    error_description: str


class OAuthFailure(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


router = APIRouter(tags=[OAUTH])


@router.post(
    "/api/oauth/token",
    response_model=None,
    responses=ok(AccessToken)
    | errors(OAuthError, 401)
    # A NUL in the URL or an oversized body is refused before the endpoint, in the operator
    # API's envelope.
    | errors(OAuthError | ErrorBody, 400)
    | errors(ErrorBody, 413),
    openapi_extra=json_body(TokenRequest) | {"security": [{}]},
)
async def token(request: Request) -> JSONResponse:
    try:
        params = _params(await request.body(), request.headers.get("content-type", ""))
        client_id, secret = _client(request, params)
        if params.get("grant_type") is None:
            raise OAuthFailure(400, "invalid_request", "grant_type is required")
        if params["grant_type"] != "client_credentials":
            raise OAuthFailure(400, "unsupported_grant_type", "Only client_credentials")
        creds = services(request).credentials
        try:
            access, ttl, scopes = await creds.issue_access_token(
                client_id, secret, _scopes(params.get("scope"))
            )
        except InvalidClient as exc:
            raise OAuthFailure(401, "invalid_client", str(exc)) from None
        except InvalidScope as exc:
            raise OAuthFailure(400, "invalid_scope", str(exc)) from None
    except OAuthFailure as exc:
        body = {"error": exc.error, "error_description": exc.description}
        return JSONResponse(body, status_code=exc.status, headers=NO_STORE)
    reply = {"access_token": access, "token_type": "Bearer", "expires_in": ttl}
    return JSONResponse({**reply, "scope": " ".join(scopes)}, headers=NO_STORE)


def _params(raw: bytes, content_type: str) -> dict[str, str]:
    """The request's parameters: JSON when it says so, form-encoded otherwise."""
    try:
        if "json" in content_type:
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("not an object")
            values: dict[str, Any] = body
        else:
            values = dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise OAuthFailure(400, "invalid_request", "The body is not a valid request") from None
    wrong = [k for k, v in values.items() if not isinstance(v, str) or "\x00" in v]
    if wrong:
        raise OAuthFailure(400, "invalid_request", f"{wrong[0]} must be a string")
    return values


def _client(request: Request, params: dict[str, str]) -> tuple[str, str]:
    """client_id and client_secret from HTTP Basic (RFC 6749 §2.3.1, form-encoded parts) or
    from the body; one way only."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic":
        if "client_id" in params or "client_secret" in params:
            raise OAuthFailure(400, "invalid_request", "Authenticate the client one way only")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthFailure(401, "invalid_client", "Malformed Basic credentials") from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise OAuthFailure(401, "invalid_client", "Malformed Basic credentials")
        return unquote(client_id), unquote(secret)
    client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
    if not client_id or not secret:
        raise OAuthFailure(401, "invalid_client", "client_id and client_secret are required")
    return client_id, secret


def _scopes(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    return [s for s in raw.split(" ") if s]
