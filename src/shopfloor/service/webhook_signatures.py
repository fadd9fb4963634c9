"""How each webhook provider signs its deliveries (rensei-platform.md §5.1): an HMAC over the
raw body, in the provider's own header and format, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

LINEAR = "linear"
GITHUB = "github"
GITHUB_ACTIONS = "github-actions"
VERCEL = "vercel"
PROVIDERS = (LINEAR, GITHUB, GITHUB_ACTIONS, VERCEL)


@dataclass(frozen=True)
class Scheme:
    headers: tuple[str, ...]  # where the signature may be (lower case), first found wins
    prefix: str  # what precedes the hex digest in the header
    delivery_header: str | None  # the provider's id of the delivery
    event_header: str | None


SCHEMES = {
    # Linear's reference names `x-linear-signature`, its guide and SDK `linear-signature`.
    LINEAR: Scheme(
        ("linear-signature", "x-linear-signature"), "", "linear-delivery", "linear-event"
    ),
    GITHUB: Scheme(("x-hub-signature-256",), "sha256=", "x-github-delivery", "x-github-event"),
    GITHUB_ACTIONS: Scheme(
        ("x-hub-signature-256",), "sha256=", "x-github-delivery", "x-github-event"
    ),
    VERCEL: Scheme(("x-vercel-signature",), "", None, None),
}


def signature_valid(provider: str, secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    scheme = SCHEMES[provider]
    presented = next((headers[h] for h in scheme.headers if h in headers), None)
    if presented is None or not presented.startswith(scheme.prefix):
        return False
    digest = presented[len(scheme.prefix) :].strip().lower()
    # Vercel signs with HMAC-SHA1 (40 hex digits); the platform reference says SHA-256.
    algorithm = hashlib.sha1 if provider == VERCEL and len(digest) == 40 else hashlib.sha256
    expected = hmac.new(secret.encode(), body, algorithm).hexdigest()
    return hmac.compare_digest(expected.encode(), digest.encode())


def sign(provider: str, secret: str, body: bytes) -> dict[str, str]:
    """The headers a provider would send for `body` (tests, and `shopfloor webhook send`)."""
    scheme = SCHEMES[provider]
    algorithm = hashlib.sha1 if provider == VERCEL else hashlib.sha256
    digest = hmac.new(secret.encode(), body, algorithm).hexdigest()
    return {scheme.headers[0]: scheme.prefix + digest}
