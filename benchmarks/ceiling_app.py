"""The ceiling: a bare FastAPI app with the same request shapes as the AgentFactory drain
(a GET returning one work item, a POST with a small JSON body), and no queue or database."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

app = FastAPI()

WORK = {
    "work": [
        {
            "sessionId": "sess_0123456789abcdef",
            "issueId": "",
            "issueIdentifier": "",
            "priority": 3,
            "queuedAt": 1_700_000_000_000,
            "prompt": '{"i": 1, "enq_ts": 1700000000000000000, "pad": "' + "x" * 48 + '"}',
        }
    ],
    "inboxMessages": {},
    "hasInboxMessages": False,
    "preClaimed": True,
    "claimedSessionIds": ["sess_0123456789abcdef"],
}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/poll")
async def poll() -> dict[str, Any]:
    return WORK


@app.post("/status")
async def status(request: Request) -> dict[str, Any]:
    body = await request.json()
    return {"updated": True, "session": {"sessionId": "sess_0123456789abcdef", **body}}
