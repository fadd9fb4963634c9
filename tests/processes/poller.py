"""A minimal AgentFactory worker process for race tests: register, then poll and complete
sessions until the queue stays empty. Prints the ids it claimed as JSON."""

from __future__ import annotations

import json
import sys
import time

import httpx


def main(url: str, key: str, capacity: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    claimed: list[str] = []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        wid = http.post(
            "/api/workers/register", json={"hostname": "racer", "capacity": capacity}
        ).json()["workerId"]
        empty = 0
        while empty < 3:
            work = http.get(f"/api/workers/{wid}/poll").json()["work"]
            if not work:
                empty += 1
                time.sleep(0.05)
                continue
            empty = 0
            for item in work:
                sid = item["sessionId"]
                claimed.append(sid)
                for status in ("running", "finalizing", "completed"):
                    r = http.post(
                        f"/api/sessions/{sid}/status", json={"workerId": wid, "status": status}
                    )
                    r.raise_for_status()
    print(json.dumps({"worker": wid, "claimed": claimed}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
