"""The registry of remote A2A agents an organisation works with (rensei-platform.md §4.2), and
dispatching to them (§4.3): each registered agent's skills are MCP tools of the
organisation's sessions, and every call is recorded as a dispatch."""

from __future__ import annotations

import re
import secrets
from typing import Any

from shopfloor.clock import Clock
from shopfloor.ids import uuid7_hex
from shopfloor.outbound.a2a_peers import A2aPeers, PeerError
from shopfloor.service.errors import A2aAgentNotFound, Conflict, InvalidInput
from shopfloor.store import Store
from shopfloor.store.a2a_records import A2aAgentRecord, A2aDispatchRecord, DispatchFilter
from shopfloor.store.errors import DuplicateKey

TRUST_LEVELS = ("external", "trusted", "internal", "system")
DEFAULT_TRUST = "external"
DISPATCH_STATUSES = ("pending", "running", "completed", "failed")
MAX_URL = 2048
MAX_OUTPUT = 100_000
# A2A task states as a dispatch's status.
_DONE = {"completed": "completed", "failed": "failed", "rejected": "failed", "canceled": "failed"}


def slug_of(name: str) -> str:
    """The card's name lower-cased, each run of non-alphanumerics as `_` (peer tools' prefix)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "agent"


class A2aRegistry:
    def __init__(self, store: Store, clock: Clock, peers: A2aPeers) -> None:
        self.store = store
        self.clock = clock
        self.peers = peers

    async def register(self, org_id: str, url: str) -> A2aAgentRecord:
        if not url or len(url) > MAX_URL:
            raise InvalidInput("url", f"url: a URL of at most {MAX_URL} characters")
        card = await self._card(url)
        now = self.clock.now_ms()
        agent = A2aAgentRecord(
            id="a2a_" + secrets.token_hex(12),
            org_id=org_id,
            url=url,
            slug=slug_of(card["name"]),
            trust_level=DEFAULT_TRUST,
            card=card,
            reachable=True,
            last_fetched_at=now,
            created_at=now,
            updated_at=now,
        )
        try:
            await self.store.insert_a2a_agent(agent)
        except DuplicateKey:
            raise Conflict("url: this organisation registered that agent already") from None
        return agent

    async def get(self, org_id: str, agent_id: str) -> A2aAgentRecord:
        agent = await self.store.get_a2a_agent(org_id, agent_id)
        if agent is None:
            raise A2aAgentNotFound(agent_id)
        return agent

    async def list_agents(self, org_id: str) -> list[A2aAgentRecord]:
        return await self.store.list_a2a_agents(org_id)

    async def set_trust(self, org_id: str, agent_id: str, level: Any) -> A2aAgentRecord:
        if level not in TRUST_LEVELS:
            raise InvalidInput("trustLevel", "trustLevel: one of " + ", ".join(TRUST_LEVELS))
        await self.get(org_id, agent_id)
        changes = {"trust_level": level, "updated_at": self.clock.now_ms()}
        return await self._update(org_id, agent_id, changes)

    async def delete(self, org_id: str, agent_id: str) -> None:
        if not await self.store.delete_a2a_agent(org_id, agent_id):
            raise A2aAgentNotFound(agent_id)

    async def refetch(self, org_id: str, agent_id: str) -> A2aAgentRecord:
        """Fetch the card again: kept as it was, `reachable: false`, if that fails."""
        agent = await self.get(org_id, agent_id)
        now = self.clock.now_ms()
        try:
            card = await self.peers.fetch_card(agent.url)
        except PeerError:
            return await self._update(org_id, agent_id, {"reachable": False, "updated_at": now})
        changes = {
            "card": card,
            "slug": slug_of(card["name"]),
            "reachable": True,
            "last_fetched_at": now,
            "updated_at": now,
        }
        return await self._update(org_id, agent_id, changes)

    async def dispatch(
        self,
        agent: A2aAgentRecord,
        skill_id: str,
        text: str,
        *,
        session_id: str | None,
        kind: str = "transparent",
    ) -> tuple[A2aDispatchRecord, str]:
        """Send `text` to the agent for one of its skills; the dispatch as recorded, and the
        agent's answer as text. A failed call is recorded `failed` and raises PeerError."""
        dispatch = A2aDispatchRecord(
            id="dsp_" + uuid7_hex(),
            org_id=agent.org_id,
            agent_id=agent.id,
            agent_name=agent.card["name"],
            skill_id=skill_id,
            status="running",
            dispatch_type=kind,
            input_text=text,
            dispatched_at=self.clock.now_ms(),
            session_id=session_id,
        )
        await self.store.insert_a2a_dispatch(dispatch)
        try:
            result = await self.peers.send(agent.card["url"], text, {"skill": skill_id})
        except PeerError as exc:
            await self._finish(dispatch.id, "failed", exc.message, None)
            raise
        status, output = outcome(result)
        task_id = result.get("id") if result.get("kind", "task") == "task" else None
        await self._finish(
            dispatch.id, status, output, task_id[:200] if isinstance(task_id, str) else None
        )
        return dispatch, output

    async def dispatches(self, flt: DispatchFilter) -> list[A2aDispatchRecord]:
        return await self.store.list_a2a_dispatches(flt)

    async def _finish(
        self, dispatch_id: str, status: str, output: str, task_id: str | None
    ) -> None:
        changes: dict[str, Any] = {"status": status, "output_text": output, "task_id": task_id}
        if status in ("completed", "failed"):
            changes["completed_at"] = self.clock.now_ms()
        await self.store.update_a2a_dispatch(dispatch_id, changes)

    async def _card(self, url: str) -> dict[str, Any]:
        try:
            return await self.peers.fetch_card(url)
        except PeerError as exc:
            raise InvalidInput("url", exc.message) from None

    async def _update(self, org_id: str, agent_id: str, changes: dict[str, Any]) -> A2aAgentRecord:
        updated = await self.store.update_a2a_agent(org_id, agent_id, changes)
        if updated is None:
            raise A2aAgentNotFound(agent_id)
        return updated


def outcome(result: dict[str, Any]) -> tuple[str, str]:
    """A peer's result (a Task or a Message) as a dispatch status and its text."""
    if result.get("kind") == "message":
        return "completed", _texts(result.get("parts"))
    status = result.get("status") if isinstance(result.get("status"), dict) else {}
    state = status.get("state") if isinstance(status, dict) else None
    texts = [_texts(a.get("parts")) for a in result.get("artifacts") or [] if isinstance(a, dict)]
    message = status.get("message") if isinstance(status, dict) else None
    if isinstance(message, dict):
        texts.append(_texts(message.get("parts")))
    text = "\n".join(t for t in texts if t)[:MAX_OUTPUT].replace("\x00", "")
    return _DONE.get(str(state), "running"), text


def _texts(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "\n".join(
        p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
    )
