"""The keys that sign runtime JWTs, kept in a file outside the database.

Anyone who can read a signing key can forge a runtime JWT for any worker, so the keys live in
their own file (mode 0600, in the data dir unless SHOPFLOOR_SIGNING_KEY_FILE names another),
never in the database or its backups. The file holds a list of keys, newest first: the newest
signs, every one listed verifies (a token names its key in its `kid` header). Rotation adds a
key at the front (`shopfloor signing-key rotate`); servers re-read the file when they meet a
`kid` they do not know and when its modification time changes, so a rotation needs no
restart, and tokens signed with an older key stay valid until that key is retired, which a
rotation does once every token it signed has expired.

Several server processes on one host share the file; servers on several hosts must be given
the same file."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from shopfloor.service.private_files import write_private


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: str
    created_at: int  # epoch ms


def new_key(now_ms: int) -> SigningKey:
    return SigningKey(
        kid=f"k_{secrets.token_hex(8)}",
        secret=base64.urlsafe_b64encode(secrets.token_bytes(48)).decode(),
        created_at=now_ms,
    )


class SigningKeyError(Exception):
    """The key file cannot be read or has no usable key."""


def read_keys(path: Path) -> list[SigningKey]:
    try:
        raw = json.loads(path.read_text())
        keys = [SigningKey(**k) for k in raw["keys"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SigningKeyError(f"{path}: not a readable signing key file ({exc})") from None
    if not keys:
        raise SigningKeyError(f"{path}: holds no signing key")
    return keys


def write_keys(path: Path, keys: list[SigningKey], *, replace: bool = True) -> bool:
    """Write the file atomically, mode 0600, creating its folder (0700) if missing. With
    `replace=False` an existing file wins: False is returned and nothing is written, so
    processes starting together agree on one file."""
    text = json.dumps({"keys": [asdict(k) for k in keys]}, indent=2)
    return write_private(path, text, replace=replace)


def rotate(path: Path, now_ms: int, retire_after_ms: int) -> tuple[SigningKey, list[str]]:
    """Put a new key in front, and retire the keys whose successor is older than
    `retire_after_ms` (every token they signed has expired). Returns the new key and the
    retired kids."""
    keys = read_keys(path)
    kept = [keys[0]]
    retired = []
    for older, newer in zip(keys[1:], keys, strict=False):
        if now_ms - newer.created_at > retire_after_ms:
            retired.append(older.kid)
        else:
            kept.append(older)
    key = new_key(now_ms)
    write_keys(path, [key, *kept])
    return key, retired


class SigningKeys:
    """The signing keys a server process holds, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: list[SigningKey] = []
        self._mtime_ns = -1

    def load_or_create(self, now_ms: int, seed: str | None = None) -> None:
        """Read the file, creating it with one new key if it does not exist (or with `seed`,
        the secret an older shopfloor kept in its database, so its tokens stay valid)."""
        if not self.path.exists():
            first = SigningKey("legacy", seed, now_ms) if seed else new_key(now_ms)
            write_keys(self.path, [first], replace=False)
        self.reload()

    def reload(self) -> None:
        mtime = self.path.stat().st_mtime_ns
        self._keys = read_keys(self.path)
        self._mtime_ns = mtime

    def reload_if_changed(self) -> None:
        """Pick up a rotation (a stat of the file; read only if it changed)."""
        with contextlib.suppress(OSError):
            if self.path.stat().st_mtime_ns != self._mtime_ns:
                self.reload()

    @property
    def current(self) -> SigningKey:
        return self._keys[0]

    def verifying(self, kid: str | None) -> list[SigningKey]:
        """The keys a token naming `kid` may be verified with: that one (the file is re-read
        once if it is unknown, as after a rotation on another host), or every key for a token
        that names none (signed before keys had ids)."""
        if kid is None:
            return list(self._keys)
        found = [k for k in self._keys if k.kid == kid]
        if not found:
            self.reload_if_changed()
            found = [k for k in self._keys if k.kid == kid]
        return found
