"""Secrets the server must read back (git tokens, GitHub App private keys, webhook signing
secrets, vault entries), stored encrypted under keys kept outside the database.

A secret is sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the newest key of a
key file of its own (mode 0600, `secret-keys.json` in the data dir unless
SHOPFLOOR_SECRET_KEY_FILE names another; the same format as the signing-key file), so a copy
of the database alone reveals nothing. Each sealed value names its key and is bound to a
`context` (for example `git-source:<id>`) as associated data: a value copied into another row
does not open there. Servers on several hosts must be given the same file."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shopfloor.service.signing_keys import SigningKey, new_key, read_keys, write_keys

PREFIX = "sb1"
NONCE_BYTES = 12


class SecretBoxError(Exception):
    """A sealed value that cannot be opened: unknown key, wrong context or tampered."""


def _aes_key(key: SigningKey) -> AESGCM:
    material = base64.urlsafe_b64decode(key.secret.encode())
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"shopfloor secret box"
    ).derive(material)
    return AESGCM(derived)


class SecretBox:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, AESGCM] = {}
        self._current = ""

    def load_or_create(self, now_ms: int) -> None:
        if not self.path.exists():
            write_keys(self.path, [new_key(now_ms)], replace=False)
        keys = read_keys(self.path)
        self._keys = {k.kid: _aes_key(k) for k in keys}
        self._current = keys[0].kid

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._current].encrypt(nonce, plaintext.encode(), context.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{PREFIX}.{self._current}.{body}"

    def open(self, sealed: str, context: str) -> str:
        try:
            prefix, kid, body = sealed.split(".", 2)
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            raise SecretBoxError("not a sealed value") from None
        key = self._keys.get(kid)
        if prefix != PREFIX or key is None:
            raise SecretBoxError(f"sealed with an unknown key {kid!r}")
        try:
            plain = key.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except InvalidTag:
            raise SecretBoxError("does not open: tampered, or sealed for another row") from None
        return plain.decode()
