"""The A2A registry in-process on both databases, against a real remote agent (a fake one on
loopback): register by URL (the card fetched), get, trust, refetch and `reachable`, delete;
bad URLs store nothing; the agent's skills as MCP tools of a session, recorded as dispatches;
nothing of one organisation seen or changed by another's key."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.a2a.fake_agent import fake_agent
from tests.mcp.helpers import held_session, tenant


async def register(api: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    return await api.post("/api/a2a/agents", json={"url": url}, headers=headers)


async def tool(
    api: httpx.AsyncClient, session: str, headers: dict[str, str], method: str, **params: Any
) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    reply = await api.post(f"/api/mcp/{session}", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


async def test_register_read_trust_refetch_delete(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    with fake_agent() as peer:
        reply = await register(api, peer.url, a.key)
        assert reply.status_code == 200, reply.text
        agent = reply.json()["agent"]
        assert agent["orgId"] == a.org_id and agent["trustLevel"] == "external"
        assert agent["card"]["name"] == "Vercel Ops" and agent["reachable"] is True
        assert [s["id"] for s in agent["card"]["skills"]] == ["deploy", "fail"]
        again = await register(api, peer.url, a.key)
        assert again.status_code == 409
        listed = (await api.get("/api/a2a/agents", headers=a.key)).json()["agents"]
        assert [x["id"] for x in listed] == [agent["id"]]
        path = f"/api/a2a/agents/{agent['id']}"
        trusted = await api.patch(path, json={"trustLevel": "trusted"}, headers=a.key)
        assert trusted.json()["agent"]["trustLevel"] == "trusted"
        bad = await api.patch(path, json={"trustLevel": "godlike"}, headers=a.key)
        assert bad.status_code == 400 and bad.json()["message"].startswith("trustLevel")
        fetched = await api.post(f"{path}/refetch", headers=a.key)
        assert fetched.json()["agent"]["reachable"] is True
    gone = (await api.post(f"{path}/refetch", headers=a.key)).json()["agent"]
    assert gone["reachable"] is False and gone["card"]["name"] == "Vercel Ops"
    assert (await api.delete(path, headers=a.key)).json() == {"deleted": True, "id": agent["id"]}
    assert (await api.get(path, headers=a.key)).status_code == 404


async def test_bad_urls_store_nothing(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    with fake_agent() as peer:
        for url in (
            peer.url + "/elsewhere",  # redirected to another host: not followed
            peer.url + "/big.json",
            peer.url + "/nocard.json",
            "ftp://example.invalid/card",
            "http://127.0.0.1:1",  # nothing listens
        ):
            reply = await register(api, url, a.key)
            assert reply.status_code == 400, (url, reply.text)
            assert reply.json()["message"].startswith("url"), reply.text
        missing = await api.post("/api/a2a/agents", json={}, headers=a.key)
        assert missing.status_code == 400
    assert (await api.get("/api/a2a/agents", headers=a.key)).json()["agents"] == []


async def test_peer_skills_are_tools_and_calls_are_dispatches(api: httpx.AsyncClient) -> None:
    a = await tenant(api, "a")
    session = await held_session(api, a)
    with fake_agent() as peer:
        agent = (await register(api, peer.url, a.key)).json()["agent"]
        tools = (await tool(api, session, a.worker, "tools/list"))["result"]["tools"]
        names = [t["name"] for t in tools]
        assert {"vercel_ops.deploy", "a2a_vercel_ops_deploy", "vercel_ops.fail"} <= set(names)
        done = await tool(
            api,
            session,
            a.worker,
            "tools/call",
            name="vercel_ops.deploy",
            arguments={"text": "the web app"},
        )
        assert done["result"] == {
            "content": [{"type": "text", "text": "done: the web app"}],
            "isError": False,
        }
        legacy = await tool(
            api,
            session,
            a.worker,
            "tools/call",
            name="a2a_vercel_ops_deploy",
            arguments={"service": "api"},
        )
        assert legacy["result"]["content"][0]["text"] == "done: " + json.dumps({"service": "api"})
        failed = await tool(
            api, session, a.worker, "tools/call", name="vercel_ops.fail", arguments={}
        )
        assert failed["result"]["isError"] is True
        assert "deploy target on fire" in failed["result"]["content"][0]["text"]
        assert peer.received[0]["params"]["message"]["metadata"] == {"skill": "deploy"}
    listed = (await api.get("/api/a2a/dispatches", headers=a.key)).json()
    statuses = [(d["skillId"], d["status"]) for d in listed["dispatches"]]
    assert statuses == [("fail", "failed"), ("deploy", "completed"), ("deploy", "completed")]
    newest = listed["dispatches"][1]
    assert newest["dispatchType"] == "transparent" and newest["agentId"] == agent["id"]
    assert newest["taskId"] == "remote-task-1" and newest["sessionId"] == session
    assert newest["output"] == {"text": 'done: {"service": "api"}'}
    only_failed = await api.get("/api/a2a/dispatches?status=failed", headers=a.key)
    assert len(only_failed.json()["dispatches"]) == 1
    paged = (await api.get("/api/a2a/dispatches?limit=2", headers=a.key)).json()
    rest = await api.get(f"/api/a2a/dispatches?cursor={paged['nextCursor']}", headers=a.key)
    assert len(rest.json()["dispatches"]) == 1
    assert (await api.get("/api/a2a/dispatches?limit=0", headers=a.key)).status_code == 400


async def test_other_organisations_neither_see_nor_use_the_agent(api: httpx.AsyncClient) -> None:
    a, b = await tenant(api, "a"), await tenant(api, "b")
    theirs = await held_session(api, b)
    with fake_agent() as peer:
        agent = (await register(api, peer.url, a.key)).json()["agent"]
        path = f"/api/a2a/agents/{agent['id']}"
        assert (await api.get(path, headers=b.key)).status_code == 404
        assert (
            await api.patch(path, json={"trustLevel": "trusted"}, headers=b.key)
        ).status_code == 404
        assert (await api.post(f"{path}/refetch", headers=b.key)).status_code == 404
        assert (await api.delete(path, headers=b.key)).status_code == 404
        assert (await api.get("/api/a2a/agents", headers=b.key)).json()["agents"] == []
        names = [
            t["name"] for t in (await tool(api, theirs, b.worker, "tools/list"))["result"]["tools"]
        ]
        assert not any(n.startswith("vercel_ops") for n in names)
        call = await tool(
            api, theirs, b.worker, "tools/call", name="vercel_ops.deploy", arguments={}
        )
        assert call["error"]["code"] == -32601
        assert peer.received == []
        # B may register the same URL for itself.
        assert (await register(api, peer.url, b.key)).status_code == 200
    assert (await api.get("/api/a2a/dispatches", headers=b.key)).json()["dispatches"] == []
    assert (await api.get("/api/a2a/agents")).status_code == 401
    assert (await api.get("/api/a2a/agents", headers=a.worker)).status_code == 401
