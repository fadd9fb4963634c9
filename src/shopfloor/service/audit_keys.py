"""The keys that sign the audit log, kept in a file outside the database.

The file (mode 0600; `audit-keys.json` in the data dir unless SHOPFLOOR_AUDIT_KEY_FILE names
another) holds master seeds, newest first. Each organisation's Ed25519 key is derived from a
seed and the organisation's id (HKDF-SHA256), so one file serves every organisation, and a
database copy alone can neither forge nor re-sign an entry. Rotation (`shopfloor audit
rotate-key`) puts a new seed in front and marks the older ones revoked: a revoked key signs
nothing more but stays in the JWKS, so the history it signed still verifies."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shopfloor.service.audit_chain import b64url, iso
from shopfloor.service.private_files import write_private


@dataclass(frozen=True)
class AuditSeed:
    kid: str
    seed: str  # base64 of 32 random bytes
    created_at: int  # epoch ms
    revoked_at: int | None = None


class AuditKeyError(Exception):
    """The key file cannot be read or has no usable key."""


def new_seed(now_ms: int) -> AuditSeed:
    return AuditSeed(
        f"ak_{secrets.token_hex(8)}", base64.b64encode(secrets.token_bytes(32)).decode(), now_ms
    )


def read_seeds(path: Path) -> list[AuditSeed]:
    try:
        seeds = [AuditSeed(**k) for k in json.loads(path.read_text())["keys"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AuditKeyError(f"{path}: not a readable audit key file ({exc})") from None
    if not seeds:
        raise AuditKeyError(f"{path}: holds no audit key")
    return seeds


def write_seeds(path: Path, seeds: list[AuditSeed], *, replace_file: bool = True) -> bool:
    text = json.dumps({"keys": [asdict(s) for s in seeds]}, indent=2)
    return write_private(path, text, replace=replace_file)


def rotate(path: Path, now_ms: int) -> AuditSeed:
    """A new signing seed in front; the older ones are revoked (they verify, never sign)."""
    older = [
        s if s.revoked_at is not None else replace(s, revoked_at=now_ms) for s in read_seeds(path)
    ]
    seed = new_seed(now_ms)
    write_seeds(path, [seed, *older])
    return seed


def org_key(seed: AuditSeed, org_id: str) -> Ed25519PrivateKey:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"shopfloor-audit-v1", info=org_id.encode()
    ).derive(base64.b64decode(seed.seed))
    return Ed25519PrivateKey.from_private_bytes(derived)


def public_x(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return b64url(raw)


class AuditKeys:
    """The audit seeds a server process holds, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seeds: list[AuditSeed] = []
        self._mtime_ns = -1
        self._derived: dict[tuple[str, str], Ed25519PrivateKey] = {}

    def load_or_create(self, now_ms: int) -> None:
        if not self.path.exists():
            write_seeds(self.path, [new_seed(now_ms)], replace_file=False)
        self.reload()

    def reload(self) -> None:
        mtime = self.path.stat().st_mtime_ns
        self._seeds = read_seeds(self.path)
        self._mtime_ns = mtime

    def reload_if_changed(self) -> None:
        with contextlib.suppress(OSError):
            if self.path.stat().st_mtime_ns != self._mtime_ns:
                self.reload()

    def signer(self, org_id: str) -> tuple[str, Ed25519PrivateKey]:
        """The kid and private key that sign the organisation's next entry."""
        self.reload_if_changed()
        seed = self._seeds[0]
        key = self._derived.get((seed.kid, org_id))
        if key is None:
            if len(self._derived) > 10_000:
                self._derived.clear()
            key = self._derived[(seed.kid, org_id)] = org_key(seed, org_id)
        return seed.kid, key

    def jwks(self, org_id: str) -> dict[str, Any]:
        """The organisation's public keys, active and revoked, as a JWK set."""
        return {"keys": [self._jwk(s, org_id) for s in self._seeds]}

    @staticmethod
    def _jwk(seed: AuditSeed, org_id: str) -> dict[str, Any]:
        return {
            "kid": seed.kid,
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "x": public_x(org_key(seed, org_id)),
            "rensei:workspace_id": org_id,
            "rensei:created_at": iso(seed.created_at),
            "rensei:revoked_at": None if seed.revoked_at is None else iso(seed.revoked_at),
        }
