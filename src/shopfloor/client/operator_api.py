"""The operator API (`/api/v1`, with the admin key): what the `shopfloor` CLI uses, and what
scripts and the worker's zero-config start use. Synchronous; one httpx connection pool."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from shopfloor.client.errors import ApiError, error_message

# The CLI's historical name for the operator API's errors.
OperatorError = ApiError


def find_admin_key(explicit: str | None, data_dir: Path) -> str | None:
    """The admin key from the flag/env, else from the key file `shopfloor serve` wrote."""
    if explicit:
        return explicit
    key_file = data_dir / "admin-key"
    if key_file.is_file():
        return key_file.read_text().strip() or None
    return None


class OperatorClient:
    def __init__(self, base_url: str, admin_key: str | None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response.status_code, error_message(response))
        return response.json()

    def create_session(self, fields: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in fields.items() if v is not None}
        result: dict[str, Any] = self._call("POST", "/api/v1/sessions", json=body)
        return result

    def list_sessions(self, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in filters.items() if v is not None}
        result: dict[str, Any] = self._call("GET", "/api/v1/sessions", params=params)
        return result

    def get_session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/sessions/{session_id}")
        return result

    def stop_session(self, session_id: str, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else {}
        result: dict[str, Any] = self._call(
            "POST", f"/api/v1/sessions/{session_id}/stop", json=body
        )
        return result

    def prompt_session(self, session_id: str, text: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/api/v1/sessions/{session_id}/prompt", json={"text": text}
        )
        return result

    def nudge_session(self, session_id: str, text: str | None = None) -> dict[str, Any]:
        body = {"text": text} if text else {}
        result: dict[str, Any] = self._call(
            "POST", f"/api/v1/sessions/{session_id}/nudge", json=body
        )
        return result

    def session_activity(self, session_id: str, after: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", f"/api/v1/sessions/{session_id}/activity", params={"after": after}
        )
        return result

    def stream_session_events(self, session_id: str, after: int) -> Iterator[dict[str, str]]:
        """The session's timeline entries after `after` as they are written (server-sent
        events: each a dict of `event`, `id` and `data`), until the server ends the stream."""
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after)}
        timeout = httpx.Timeout(10.0, read=60.0)  # the server sends a keep-alive every 15 s
        path = f"/api/v1/sessions/{session_id}/events"
        with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, error_message(response))
            yield from server_sent_events(response.iter_lines())

    def session_recovery(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/sessions/{session_id}/recovery")
        return result

    def list_workers(self, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else {}
        result: list[dict[str, Any]] = self._call("GET", "/api/v1/workers", params=params)
        return result

    def create_token(
        self, project: str | None, org: str | None, label: str | None
    ) -> dict[str, Any]:
        body = {k: v for k, v in {"project": project, "org": org, "label": label}.items() if v}
        result: dict[str, Any] = self._call("POST", "/api/v1/registration-tokens", json=body)
        return result

    def list_tokens(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/api/v1/registration-tokens")
        return result

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/api/v1/registration-tokens/{token_id}")
        return result

    # -- repositories, git credential sources, batch items --

    def create_item(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to /api/v1/<collection> (repositories, git-credential-sources, batch-items)."""
        fields = {k: v for k, v in body.items() if v is not None}
        result: dict[str, Any] = self._call("POST", f"/api/v1/{collection}", json=fields)
        return result

    def list_items(self, collection: str, **params: Any) -> list[dict[str, Any]]:
        query = {k: v for k, v in params.items() if v is not None}
        result: list[dict[str, Any]] = self._call("GET", f"/api/v1/{collection}", params=query)
        return result

    def get_item(self, collection: str, item_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/{collection}/{item_id}")
        return result

    def delete_item(self, collection: str, item_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/api/v1/{collection}/{item_id}")
        return result

    def create_environment(self, fields: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in fields.items() if v is not None}
        result: dict[str, Any] = self._call("POST", "/api/v1/cloud/environments", json=body)
        return result

    def list_environments(self, include_archived: bool = False) -> list[dict[str, Any]]:
        """Every environment, following the pages."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100, "include_archived": str(include_archived).lower()}
        while True:
            page: dict[str, Any] = self._call("GET", "/api/v1/cloud/environments", params=params)
            found.extend(page["data"])
            if not page.get("next_page"):
                return found
            params["page"] = page["next_page"]

    def create_run(self, body: dict[str, Any], idempotency_key: str | None) -> dict[str, Any]:
        """Admit a Veryfront run (`POST /runs`); the admin key acts as a project token."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        result: dict[str, Any] = self._call("POST", "/runs", json=body, headers=headers)
        return result

    def get_run(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/runs/{run_id}")
        return result

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/runs/{run_id}/cancel")
        return result

    def list_runs(self, project: str, cursor: str | None, limit: int) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        result: dict[str, Any] = self._call("GET", f"/projects/{project}/runs", params=params)
        return result

    def stream_run_events(self, run_id: str, after_event_id: int) -> Iterator[dict[str, str]]:
        """The run's events after `after_event_id` as they are appended (server-sent events:
        each a dict of `event`, `id` and `data`), until the server ends the stream."""
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after_event_id)}
        timeout = httpx.Timeout(10.0, read=60.0)  # the server sends a keep-alive every 15 s
        path = f"/runs/{run_id}/events"
        with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, error_message(response))
            yield from server_sent_events(response.iter_lines())

    # -- managed-agent sessions (the /v1 agents and sessions API) --

    def create_agent(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/agents", json=body)
        return result

    def list_agents(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page: dict[str, Any] = self._call("GET", "/v1/agents", params=params)
            found.extend(page["data"])
            if not page.get("next_page"):
                return found
            params["page"] = page["next_page"]

    def create_managed_session(self, agent_id: str, environment_id: str) -> dict[str, Any]:
        body = {"agent": agent_id, "environment_id": environment_id}
        result: dict[str, Any] = self._call("POST", "/v1/sessions", json=body)
        return result

    def send_events(self, session_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/v1/sessions/{session_id}/events", json={"events": events}
        )
        return result

    @contextmanager
    def event_stream(
        self, session_id: str, read_timeout: float
    ) -> Iterator[Iterator[dict[str, Any]]]:
        """Open a session's live event stream (server-sent events). Once open, every event
        committed afterwards comes through it; keep-alive pings are left out."""
        timeout = httpx.Timeout(10.0, read=read_timeout)
        path = f"/v1/sessions/{session_id}/events/stream"
        with self._http.stream("GET", path, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, error_message(response))
            yield _sse_events(response)

    def set_credential(self, org: str, body: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = self._call("POST", f"/api/org/{org}/credentials", json=body)
        return found["credential"]  # type: ignore[no-any-return]

    def list_credentials(self, org: str, project: str | None) -> list[dict[str, Any]]:
        params = {"projectId": project} if project else {}
        found = self._call("GET", f"/api/org/{org}/credentials", params=params)
        return found["credentials"]  # type: ignore[no-any-return]

    def routing_metrics(self, org: str | None) -> dict[str, Any]:
        headers = {"X-Rensei-Org": org} if org else {}
        found: dict[str, Any] = self._call("GET", "/api/public/routing-metrics", headers=headers)
        return found

    # -- organisations, their keys and M2M clients --

    def create_org(self, slug: str, name: str | None) -> dict[str, Any]:
        body = {"slug": slug, **({"name": name} if name else {})}
        found: dict[str, Any] = self._call("POST", "/api/v1/orgs", json=body)
        return found

    def list_orgs(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/orgs")  # type: ignore[no-any-return]

    def mint_key(self, org: str, body: dict[str, Any]) -> dict[str, Any]:
        found = self._call("POST", f"/api/org/{org}/keys", json=body)
        return found["key"]  # type: ignore[no-any-return]

    def list_keys(self, org: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/org/{org}/keys")["keys"]  # type: ignore[no-any-return]

    def revoke_key(self, org: str, key_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/org/{org}/keys/{key_id}")  # type: ignore[no-any-return]

    def create_m2m_client(self, body: dict[str, Any]) -> dict[str, Any]:
        found = self._call("POST", "/api/admin/m2m-clients", json=body)
        return found["client"]  # type: ignore[no-any-return]

    def list_m2m_clients(self, org: str | None) -> list[dict[str, Any]]:
        params = {"orgId": org} if org else {}
        found = self._call("GET", "/api/admin/m2m-clients", params=params)
        return found["clients"]  # type: ignore[no-any-return]

    def revoke_m2m_client(self, client_id: str) -> dict[str, Any]:
        path = f"/api/admin/m2m-clients/{client_id}"
        return self._call("DELETE", path)  # type: ignore[no-any-return]

    def session_inbox(self, session_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/api/v1/sessions/{session_id}/inbox")
        return result

    def __enter__(self) -> OperatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            event: dict[str, Any] = json.loads(line.removeprefix("data: "))
            if event.get("type") != "ping":
                yield event


def server_sent_events(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """Parse a text/event-stream: one dict of `event`, `id` and `data` per event (comments
    and `retry` are skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in fields or "event" in fields:
                yield fields
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data" and "data" in fields:
            fields["data"] += "\n" + value
        elif name in ("event", "id", "data"):
            fields[name] = value
