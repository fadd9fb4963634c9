"""Identifier formats.

Session ids are UUIDv7-shaped hex (time-ordered, so id order is creation order), which is
also what the environment work API expects after its `sess_`/`work_` prefixes.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid


def uuid7_hex() -> str:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | rand & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | (0x7 << 76)  # version 7
    value = value & ~(0x3 << 62) | (0x2 << 62)  # RFC 4122 variant
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
