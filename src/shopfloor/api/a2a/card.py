"""The agent card at `/.well-known/agent-card.json` (rensei-platform.md §4.1): public, one
skill per work type, pointing at the JSON-RPC endpoint (api/a2a/routes.py). `?org=<slug>`
names an organisation's card (404 for an unknown one). The card carries the A2A 0.3 fields
the SDK clients require (protocolVersion, preferredTransport, default modes, skill tags)
beside Rensei's `@type` and `authentication`.

Left out of the OpenAPI document: a public discovery document at a well-known path, not an
operation of the API (every operation in the document takes a credential)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shopfloor import __version__
from shopfloor.api.envelope import error_response
from shopfloor.api.state import services
from shopfloor.service.dispatch import WORK_TYPES

router = APIRouter()

TEXT = ["text/plain"]
CARD_HEADERS = {"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"}


@router.get("/.well-known/agent-card.json", include_in_schema=False)
async def agent_card(request: Request, org: str | None = None) -> JSONResponse:
    name, description = "shopfloor", "Self-hosted dispatch server for fleets of AI-agent workers"
    if org is not None:
        found = await services(request).dispatcher.store.get_org(org)
        if found is None:
            return error_response(404, "org: no such organisation")
        name, description = f"shopfloor: {found.name}", f"The agent fleet of {found.name}"
    endpoint = str(request.base_url).rstrip("/") + "/api/a2a"
    return JSONResponse(card(name, description, endpoint), headers=CARD_HEADERS)


def card(name: str, description: str, endpoint: str) -> dict[str, Any]:
    return {
        "@type": "AgentCard",
        "name": name,
        "description": description,
        "url": endpoint,
        "version": __version__,
        "protocolVersion": "0.3.0",
        "preferredTransport": "JSONRPC",
        "capabilities": {
            "streaming": True,
            "pushNotifications": False,
            "stateTransitionHistory": False,
        },
        "defaultInputModes": TEXT,
        "defaultOutputModes": TEXT,
        "defaultInputContentTypes": TEXT,
        "defaultOutputContentTypes": TEXT,
        "skills": [_skill(w) for w in WORK_TYPES],
        "authentication": {"schemes": ["Bearer"]},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "security": [{"bearer": []}],
    }


def _skill(work_type: str) -> dict[str, Any]:
    words = work_type.replace("-", " ")
    return {
        "id": work_type,
        "name": words.capitalize(),
        "description": f"Queue a {words} session for the fleet's workers "
        f'(message metadata {{"workType": "{work_type}"}})',
        "tags": [work_type],
        "inputModes": TEXT,
        "outputModes": TEXT,
    }
