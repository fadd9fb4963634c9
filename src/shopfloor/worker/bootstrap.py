"""The zero-config credential: with no worker key given, a worker on the server's machine
uses the operator's admin key (the file `shopfloor serve` wrote) to mint itself an org-wide
registration token once, keeps it in its work dir (mode 0600), and registers with it. The
admin key itself is never sent to a worker route."""

from __future__ import annotations

import os
from pathlib import Path

from shopfloor.client import OperatorClient, find_admin_key

TOKEN_FILE = "registration-token"


class NoCredential(Exception):
    pass


def token_path(work_dir: Path) -> Path:
    return work_dir / TOKEN_FILE


def cached_token(work_dir: Path) -> str | None:
    path = token_path(work_dir)
    if path.is_file():
        return path.read_text().strip() or None
    return None


def mint_token(url: str, admin_key: str | None, data_dir: Path, work_dir: Path, host: str) -> str:
    """A new registration token from the operator API, saved for the next start."""
    key = find_admin_key(admin_key, data_dir)
    if key is None:
        raise NoCredential(
            "no worker key: pass --api-key (or set SHOPFLOOR_WORKER_KEY) to the server's "
            "worker key or a registration token (shopfloor tokens create), or run the worker "
            f"where it finds the server's admin key ({data_dir / 'admin-key'})"
        )
    with OperatorClient(url, key) as operator:
        token: str = operator.create_token(None, None, f"shopfloor worker on {host}")["token"]
    work_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_path(work_dir), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token
