"""The OpenAPI document describes the whole API: every operation that takes a body declares it,
every operation declares its replies and its errors in its protocol's own envelope, and the
credentials it takes. And the errors it declares are the ones it sends."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from shopfloor.app import create_app
from shopfloor.clock import ManualClock
from shopfloor.config import Settings
from tests.conftest import Backend, make_settings, running_app
from tests.routes import api_routes

# The error envelope of each group of operations: a NUL in the URL is refused before the
# issue-tracker proxy sees the request, in the AgentFactory envelope.
ENVELOPES = {
    "AgentFactory worker protocol": {"ErrorBody"},
    "AgentFactory session channel": {"ErrorBody"},
    "AgentFactory issue-tracker proxy": {"ProxyFailure", "ErrorBody"},
    "Qoder environments": {"EnvironmentError"},
    "Anthropic environments": {"EnvironmentError"},
    "Operator API": {"ErrorBody"},
    "Operator API: session channel": {"ErrorBody"},
    "Veryfront agent-workers": {"VeryfrontError"},
    "Veryfront runs and conversations": {"VeryfrontError"},
    "Qoder managed agents": {"EnvironmentError"},
    "Managed agents": {"EnvironmentError"},
    "Rensei platform: authentication": {"ErrorBody"},
    "OAuth 2.0": {"OAuthError", "ErrorBody"},
    "Rensei platform: webhooks": {"ErrorBody"},
    "Rensei platform: audit": {"ErrorBody"},
    "Rensei platform: fleet": {"ErrorBody"},
    "Rensei platform: A2A registry": {"ErrorBody"},
    "Rensei public Sessions API": {"PlatformError"},
    "Rensei CLI": {"PlatformError"},
    "Rensei platform: credentials": {"ErrorBody"},
    "Rensei daemon: credentials": {"PlatformError"},
    "Rensei daemon: hosts": {"PlatformError"},
}
# Public by contract: an organisation's audit-log keys (rensei-platform.md §6.3).
PUBLIC = {("GET", "/.well-known/audit-keys/{workspace_id}")}
# POST/PUT routes that take no body (the rest must declare theirs).
BODILESS = {
    ("POST", "/api/workers/{worker_id}/refresh-token"),
    ("POST", "/api/v1/cloud/environments/{environment_id}/archive"),
    ("POST", "/v1/environments/{environment_id}/archive"),
    ("POST", "/api/v1/cloud/environments/{environment_id}/work/{work_id}/ack"),
    ("POST", "/v1/environments/{environment_id}/work/{work_id}/ack"),
    ("POST", "/agent-workers/workers/{worker_id}/heartbeat"),
    ("POST", "/runs/{run_id}/cancel"),
    ("POST", "/api/a2a/agents/{agent_id}/refetch"),
    ("POST", "/api/public/sessions/{id}/stop"),
    ("POST", "/conversations/{conversation_id}/input-requests/{request_id}/cancel"),
    *(
        ("POST", prefix + path)
        for prefix in ("/v1", "/api/v1/cloud")
        for path in (
            "/agents/{agent_id}/archive",
            "/sessions/{session_id}/archive",
            "/sessions/{session_id}/cancel",
            "/sessions/{session_id}/threads/{thread_id}/archive",
        )
    ),
}
READS_BODY = ("json_object(request", "request.body()", "parse_json(")


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(database_url="sqlite:///unused.db"))


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    found: dict[str, Any] = app.openapi()
    return found


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def json_schema(response_or_body: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = response_or_body["content"]["application/json"]["schema"]
    return schema


def reply_schema(response: dict[str, Any]) -> dict[str, Any]:
    """A success reply's schema: JSON, or a server-sent event stream's."""
    content = response["content"]
    media = "application/json" if "application/json" in content else "text/event-stream"
    schema: dict[str, Any] = content[media]["schema"]
    return schema


def refs(schema: dict[str, Any]) -> set[str]:
    options = schema.get("anyOf", [schema])
    return {o["$ref"].rsplit("/", 1)[-1] for o in options if "$ref" in o}


def test_the_document_lists_every_route(app: FastAPI, document: dict[str, Any]) -> None:
    listed = {(m, p) for m, p, _ in operations(document)}
    routed = {
        (method, route.path)
        for route in api_routes(app)
        if route.include_in_schema
        for method in route.methods
    }
    assert listed == routed
    assert len(listed) >= 82


def test_every_operation_that_takes_a_body_declares_it(
    app: FastAPI, document: dict[str, Any]
) -> None:
    declared = {(m, p) for m, p, op in operations(document) if "requestBody" in op}
    for route in api_routes(app):
        if not route.include_in_schema:
            continue
        source = inspect.getsource(route.endpoint)
        reads_body = route.body_field is not None or any(r in source for r in READS_BODY)
        for method in route.methods:
            if reads_body or (method in ("POST", "PUT", "PATCH") and not _bodiless(method, route)):
                assert (method, route.path) in declared, f"{method} {route.path}: no requestBody"
    for method, path, operation in operations(document):
        if "requestBody" in operation:
            assert refs(json_schema(operation["requestBody"])), (method, path)


def _bodiless(method: str, route: APIRoute) -> bool:
    return (method, route.path) in BODILESS


def test_every_operation_declares_its_replies_and_errors(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        where = f"{method} {path}"
        responses = operation["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert success, where  # one, or two where the status tells (cancel: 200 or 202)
        for code in success:
            assert reply_schema(responses[code]), (where, code)
        assert "422" not in responses, where  # validation errors are 400s in the envelope
        errors = [code for code in responses if code.startswith("4")]
        assert {"400", "401", "413"} <= set(errors), where  # bad input; no key; too large
        for code in errors:
            assert refs(json_schema(responses[code])) <= ENVELOPES[operation["tags"][0]], (
                where,
                code,
            )
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_operation_names_its_credentials_and_protocol(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    described = {t["name"] for t in document["tags"] if t["description"]}
    for method, path, operation in operations(document):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in described, (method, path)
        assert operation["security"], (method, path)
        for requirement in operation["security"]:
            assert set(requirement) <= set(schemes), (method, path)
    assert set(ENVELOPES) == described


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for ref in walk(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[-1] in schemas, ref


# -- the declared errors are the ones sent --


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'shopfloor.db'}", None)
    async with running_app(make_settings(backend, tmp_path), ManualClock()) as client:
        yield client


def conforms(document: dict[str, Any], schema: dict[str, Any], body: Any) -> bool:
    validator = jsonschema_rs.validator_for({**schema, "components": document["components"]})
    return bool(validator.is_valid(body))


async def test_every_operation_refuses_a_missing_credential_as_declared(
    api: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    for method, path, operation in operations(document):
        if (method, path) in PUBLIC:
            continue
        url = path.replace("{", "").replace("}", "")  # any value: auth is checked first
        reply = await api.request(method, url, json={})
        assert reply.status_code == 401, (method, path, reply.text)
        declared = json_schema(operation["responses"]["401"])
        assert conforms(document, declared, reply.json()), (method, path, reply.text)
        # ...and not merely any JSON: another protocol's envelope would not do.
        others = {"type": "error", "request_id": "x", "error": {"type": "x", "message": "x"}}
        if refs(declared) != {"EnvironmentError"}:
            assert not conforms(document, declared, others), (method, path)


async def test_a_bad_body_is_refused_in_the_declared_envelope(
    api: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    """A body that is not JSON, sent with the admin key (which every protocol accepts on some
    route): 400 in the envelope the operation declares for 400."""
    admin = {"Authorization": "Bearer test-admin-key", "content-type": "application/json"}
    checked = []
    for method, path, operation in operations(document):
        if "requestBody" not in operation or path.startswith("/api/sessions"):
            continue  # the AgentFactory worker routes take no admin key: covered by the fuzzer
        url = path.replace("{", "").replace("}", "")
        reply = await api.request(method, url, content=b"{not json", headers=admin)
        if reply.status_code != 400:
            continue  # refused before the body is read (e.g. an unknown worker token route)
        declared = json_schema(operation["responses"]["400"])
        assert conforms(document, declared, reply.json()), (method, path, reply.text)
        checked.append((method, path))
    assert len(checked) >= 20, checked
