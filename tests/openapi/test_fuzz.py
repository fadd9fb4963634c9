"""schemathesis against a real `shopfloor serve` process (on SQLite and on PostgreSQL), with the
document it serves at /openapi.json: every operation, once with the admin key and once with the
credential each protocol's workers use (a runtime JWT on the AgentFactory routes, a
registration token scoped to the environment on the environment work API, a `vfw_` worker token
on the Veryfront routes). No answer may be a 5xx, and every answer must be one the document
declares: its status, its content type and its body's schema.

The number of examples is bounded so the suite stays fast (SHOPFLOOR_FUZZ_EXAMPLES, default
FUZZ_EXAMPLES per operation and phase); a release runs it longer, see the README. Path
parameters are pointed at resources that exist for two cases in three, so the fuzzed bodies
reach the code behind the lookups."""

from __future__ import annotations

import json
import os
import zlib
from typing import Any

import httpx
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from shopfloor.app import create_app
from shopfloor.config import Settings
from tests.conftest import ADMIN_KEY
from tests.openapi.conftest import Seeded
from tests.processes.server import ServerProcess

FUZZ_EXAMPLES = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def examples() -> int:
    return int(os.environ.get("SHOPFLOOR_FUZZ_EXAMPLES", FUZZ_EXAMPLES))


def served_document() -> dict[str, Any]:
    """The document /openapi.json serves, built the same way (test_the_fuzzed_document_is_the
    _served_one holds the two equal). schemathesis' loader from a fixture, which would fetch it
    from the running server, does not run under pytest 9.2 (it sets a node attribute that
    pytest no longer has), and parametrizing needs the operations before any server runs."""
    document: dict[str, Any] = create_app(Settings(database_url="sqlite:///unused.db")).openapi()
    return document


schema = schemathesis.openapi.from_dict(
    served_document(),
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": examples()},
            "phases": {"stateful": {"enabled": False}},
            "request-timeout": 15,
        }
    ),
)


def test_the_fuzzed_document_is_the_served_one(fuzz_server: ServerProcess) -> None:
    served = httpx.get(fuzz_server.url + "/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(served_document()))


@schema.parametrize()
def test_as_admin(case: schemathesis.Case, fuzz_server: ServerProcess, seeded: Seeded) -> None:
    exercise(case, fuzz_server, seeded, f"Bearer {ADMIN_KEY}")


@schema.parametrize()
def test_as_worker(case: schemathesis.Case, fuzz_server: ServerProcess, seeded: Seeded) -> None:
    exercise(case, fuzz_server, seeded, f"Bearer {worker_credential(case.path, seeded)}")


def worker_credential(path: str, seeded: Seeded) -> str:
    if path.startswith(("/api/v1/cloud/environments", "/v1/environments")):
        return seeded.registration
    if path.startswith(("/agent-workers", "/runs", "/conversations")):
        return seeded.veryfront_token
    return seeded.runtime_token


def exercise(
    case: schemathesis.Case, server: ServerProcess, seeded: Seeded, authorization: str
) -> None:
    point_at_real_resources(case, seeded)
    headers = {"Authorization": authorization}
    response = case.call(base_url=server.url, headers=headers)
    case.validate_response(
        response, checks=CHECKS, headers=headers, transport_kwargs={"base_url": server.url}
    )


def point_at_real_resources(case: schemathesis.Case, seeded: Seeded) -> None:
    """Replace a generated path parameter by an id that exists, for two cases in three (chosen
    from the generated value, so a failing case replays the same)."""
    params = case.path_parameters or {}
    for name, value in params.items():
        real = seeded.ids.get(name)
        pick = zlib.crc32(repr(value).encode())
        if real and pick % 3:
            params[name] = real[pick % len(real)]
