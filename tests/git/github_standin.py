"""A stand-in for GitHub's REST API, as far as shopfloor uses it: `POST
/app/installations/{id}/access_tokens`. A real HTTP server (in a thread) that checks the App
JWT as GitHub does (RS256 with the App's public key, `iss` = the App id, a lifetime of at most
ten minutes) and issues numbered tokens with the expiry the test sets."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def rsa_key_pem() -> tuple[str, str]:
    """A new RSA key: (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass
class GitHubStandIn:
    app_id: str
    installation_id: str
    public_key_pem: str
    token_lifetime_s: int = 3600
    failing: bool = False  # answer 500, as GitHub down would
    minted: list[dict[str, Any]] = field(default_factory=list)  # repositories asked, token
    refused: list[str] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def start(self) -> GitHubStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                standin.handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(request.rfile.read(int(request.headers["Content-Length"])))
        problem = self._problem(request, body)
        if problem is not None:
            self.refused.append(problem)
            return _reply(request, 401 if "JWT" in problem else 404, {"message": problem})
        if self.failing:
            return _reply(request, 500, {"message": "Internal Server Error"})
        token = f"ghs_standin{len(self.minted) + 1:04d}"
        expires = time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + self.token_lifetime_s)
        )
        self.minted.append({"repositories": body.get("repositories"), "token": token})
        _reply(request, 201, {"token": token, "expires_at": expires, "permissions": {}})

    def _problem(self, request: BaseHTTPRequestHandler, body: Any) -> str | None:
        if request.path != f"/app/installations/{self.installation_id}/access_tokens":
            return f"no installation at {request.path}"
        auth = request.headers.get("Authorization", "")
        try:
            claims = jwt.decode(
                auth.removeprefix("Bearer "),
                self.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
            )
        except jwt.PyJWTError as exc:
            return f"bad JWT: {exc}"
        if claims["iss"] != self.app_id or claims["exp"] - claims["iat"] > 660:
            return "bad JWT: wrong issuer or lifetime"
        if not isinstance(body, dict) or not isinstance(body.get("repositories"), list):
            return "no repositories asked"
        return None


def _reply(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(raw)))
    request.end_headers()
    request.wfile.write(raw)
