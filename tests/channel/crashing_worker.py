"""A worker process that takes one session, reports some work, and then hangs until killed.
Used to test crash recovery with a real SIGKILL. Prints the session id once it is working."""

from __future__ import annotations

import sys
import time

import httpx


def main(url: str, key: str) -> None:
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    worker_id = http.post(
        "/api/workers/register", json={"hostname": "doomed", "capacity": 1, "version": "1.0.0"}
    ).json()["workerId"]
    while True:
        work = http.get(f"/api/workers/{worker_id}/poll").json()["work"]
        if work:
            break
        time.sleep(0.1)
    sid = work[0]["sessionId"]
    base = f"/api/sessions/{sid}"
    http.post(f"{base}/status", json={"workerId": worker_id, "status": "running"})
    http.post(
        f"{base}/progress",
        json={"workerId": worker_id, "milestone": "started", "message": "agent started"},
    )
    http.post(
        f"{base}/status",
        json={
            "workerId": worker_id,
            "status": "running",
            "providerSessionId": f"prov-{worker_id}",
            "worktreePath": f"/wt/{worker_id}",
            "totalCostUsd": 0.25,
        },
    )
    for step in ("read the code", "edit login.py"):
        http.post(
            f"{base}/activity",
            json={"workerId": worker_id, "activity": {"type": "action", "content": step}},
        )
    print(sid, worker_id, flush=True)
    while True:  # the agent "runs" until the process is killed
        time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
