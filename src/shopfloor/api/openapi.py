"""What the OpenAPI document says beyond what FastAPI infers, so that the contract a generated
client or a fuzzer sees is the one the server keeps.

- Request bodies of routes that read their JSON themselves (`json_object`, Veryfront's parser,
  the hot routes): `json_body(Model)` in the route's `openapi_extra`. The model describes the
  body for the document only; the route's own checks stay what validates it, because their
  error strings are part of each protocol's wire contract.
- Replies: `ok(Model)` in `responses` (with `response_model=None`, so the route's answer is
  sent as built, never filtered through the model), and each protocol's error envelope with
  `errors(Envelope, *codes)`.
- Auth: the security schemes below, required per tag (`tag()`), or per operation with
  `security()` where one route differs from its tag.
- FastAPI lists a 422 for every route with parameters; shopfloor never answers 422 (a
  validation error is a 400 in the protocol's envelope, see app.py), so it is dropped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

# -- auth --

ADMIN_KEY = "adminKey"
WORKER_KEY = "workerKey"
REGISTRATION_TOKEN = "registrationToken"
RUNTIME_TOKEN = "runtimeToken"
VERYFRONT_WORKER_TOKEN = "veryfrontWorkerToken"
API_KEY_HEADER = "apiKeyHeader"
ORG_API_KEY = "orgApiKey"
OAUTH2 = "oauth2"
WEBHOOK_SIGNATURE = "webhookSignature"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    ADMIN_KEY: {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator's admin key: SHOPFLOOR_ADMIN_API_KEY, or the key generated "
        "at first start (saved to <data dir>/admin-key). May call every route.",
    },
    WORKER_KEY: {
        "type": "http",
        "scheme": "bearer",
        "description": "The static worker key, SHOPFLOOR_WORKER_API_KEY.",
    },
    REGISTRATION_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "description": "A registration token the operator minted (POST "
        "/api/v1/registration-tokens): `rsk_live_…` for every project, `rsp_live_…` for one "
        "project (or environment).",
    },
    RUNTIME_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A runtime JWT, returned by POST /api/workers/register to a worker that "
        "registered with a registration token; it acts only for the worker in its `sub` claim.",
    },
    VERYFRONT_WORKER_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "description": "A `vfw_…` worker token, returned by Veryfront worker registration; it "
        "acts only for its worker.",
    },
    ORG_API_KEY: {
        "type": "http",
        "scheme": "bearer",
        "description": "An organisation's API key, `rsk_live_…` (POST /api/org/{orgId}/keys): "
        "acts in its organisation, on its projects, within its scopes.",
    },
    OAUTH2: {
        "type": "oauth2",
        "description": "An M2M client's access token (POST /api/oauth/token, client "
        "credentials): acts in the client's organisation, within its scopes.",
        "flows": {"clientCredentials": {"tokenUrl": "/api/oauth/token", "scopes": {}}},
    },
    WEBHOOK_SIGNATURE: {
        "type": "apiKey",
        "in": "header",
        "name": "linear-signature",
        "description": "An HMAC-SHA256 of the raw body with the provider's webhook secret, in "
        "the provider's own header: `linear-signature` (or `x-linear-signature`) hex for "
        "Linear, `x-hub-signature-256: sha256=<hex>` for GitHub and GitHub Actions, "
        "`x-vercel-signature` hex (HMAC-SHA1, or SHA-256) for Vercel.",
    },
    API_KEY_HEADER: {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "A key this route takes as a Bearer token, sent in `x-api-key` instead "
        "(the Anthropic environments path and the Veryfront routes).",
    },
}


def security(*schemes: str) -> dict[str, Any]:
    """`openapi_extra` naming the credentials an operation takes (any one of them)."""
    return {"security": [{name: []} for name in schemes]}


@dataclass(frozen=True)
class Tag:
    name: str
    description: str
    security: tuple[str, ...]


_TAGS: dict[str, Tag] = {}


def tag(name: str, description: str, *schemes: str) -> str:
    """Declare a group of operations (one protocol, or one part of one) and the credentials
    its operations take unless one says otherwise; returns the name for `tags=[…]`."""
    _TAGS[name] = Tag(name, description, schemes)
    return name


# -- bodies and replies --

_BODY_MODELS: dict[str, type[BaseModel]] = {}


def json_body(
    *models: type[BaseModel], required: bool = True, description: str | None = None
) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON request body of one of `models`."""
    for model in models:
        if _BODY_MODELS.setdefault(model.__name__, model) is not model:
            raise ValueError(f"two request body models are named {model.__name__}")
    refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
    body: dict[str, Any] = {
        "required": required,
        "content": {"application/json": {"schema": refs[0] if len(refs) == 1 else {"anyOf": refs}}},
    }
    if description:
        body["description"] = description
    return {"requestBody": body}


def ok(model: Any, status: int = 200, description: str = "") -> dict[int | str, Any]:
    """`responses` entry of a success reply (`model` may be a type such as `Work | None`)."""
    return {status: {"model": model, "description": description or HTTPStatus(status).phrase}}


ERROR_MEANINGS = {
    400: "Bad input (the message names the field), or a NUL character in the URL",
    401: "No credential, or one this route does not take",
    403: "The credential may not touch this resource",
    404: "Not found",
    409: "Conflicts with the resource's state",
    412: "Precondition failed",
    413: "Request body larger than the route's limit",
    503: "Not configured (no webhook secret for this provider)",
}


def errors(envelope: Any, *codes: int) -> dict[int | str, Any]:
    """`responses` entries for error statuses, all with the protocol's error envelope (a
    model, or a union of models where another layer may answer first)."""
    return {
        code: {"model": envelope, "description": ERROR_MEANINGS.get(code, HTTPStatus(code).phrase)}
        for code in codes
    }


class ErrorBody(BaseModel):
    """The error envelope of the AgentFactory protocol and of the operator API
    (api/envelope.py `error_response`)."""

    error: str = Field(description="The HTTP reason phrase, e.g. `Bad Request`")
    message: str = Field(description="What is wrong; names the field for bad input")


def af_errors(*codes: int) -> dict[int | str, Any]:
    return errors(ErrorBody, *codes)


# -- the document --


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (and so /openapi.json) the completed document."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    done: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI's, cached by FastAPI until the routes change
        if not done or done[0] is not document:
            complete(document)
            done[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any]) -> None:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in _BODY_MODELS.values():
        _add_schema(schemas, model)
    components["securitySchemes"] = SECURITY_SCHEMES
    used_tags: list[str] = []
    for item in document.get("paths", {}).values():
        for operation in item.values():
            operation.get("responses", {}).pop("422", None)
            tags = operation.get("tags", [])
            used_tags.extend(t for t in tags if t not in used_tags)
            if "security" not in operation and tags and tags[0] in _TAGS:
                operation.update(security(*_TAGS[tags[0]].security))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    document["tags"] = [
        {"name": name, "description": _TAGS[name].description}
        for name in used_tags
        if name in _TAGS
    ]


def _add_schema(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    found = {**schema.pop("$defs", {}), model.__name__: schema}
    for name, definition in found.items():
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different OpenAPI schemas are named {name}")
