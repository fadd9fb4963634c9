"""Identifier formats.

Session ids are UUIDv7-shaped hex (time-ordered, so id order is creation order), which is
also what the environment work API expects after its `sess_`/`work_` prefixes. Within one
process they are strictly increasing even inside one millisecond (RFC 9562 §6.2, method 2:
the random tail is incremented), so id order is creation order there too.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid

_last_uuid7 = 0
_uuid7_lock = threading.Lock()


def uuid7_hex() -> str:
    global _last_uuid7
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | rand & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | (0x7 << 76)  # version 7
    value = value & ~(0x3 << 62) | (0x2 << 62)  # RFC 4122 variant
    with _uuid7_lock:
        if value <= _last_uuid7:
            # Same millisecond (or the clock stepped back): one more than the last id. The
            # 62 random low bits start at a random point, so the carry never reaches the
            # variant bits in practice.
            value = _last_uuid7 + 1
        _last_uuid7 = value
    return f"{value:032x}"


def new_session_id() -> str:
    return "sess_" + uuid7_hex()


def new_worker_id() -> str:
    """`wkr_` + 16 hex, the AgentFactory reference format (clients slice it for logs)."""
    return "wkr_" + uuid.uuid4().hex[:16]


def new_token_id() -> str:
    return "reg_" + uuid7_hex()


def new_secret(prefix: str, nbytes: int = 24) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def new_environment_id() -> str:
    return "env_" + uuid7_hex()
