"""Secrets the server must use in clear (webhook signing secrets: HMAC needs the secret
itself, so a digest will not do), stored encrypted with a key kept in a file outside the
database (mode 0600; `webhook-secrets.key` in the data dir unless SHOPFLOOR_WEBHOOK_KEY_FILE
names another). A copy of the database alone reveals none of them. Servers on several hosts
must be given the same file."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from shopfloor.service.private_files import write_private


class SecretBoxError(Exception):
    """The key file is unreadable, or a stored secret was encrypted with another key."""


class SecretBox:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fernet: Fernet | None = None

    def load_or_create(self) -> None:
        if not self.path.exists():
            write_private(self.path, Fernet.generate_key().decode() + "\n", replace=False)
        try:
            self._fernet = Fernet(self.path.read_text().strip().encode())
        except (OSError, ValueError) as exc:
            raise SecretBoxError(f"{self.path}: not a readable key file ({exc})") from None

    @property
    def _box(self) -> Fernet:
        if self._fernet is None:
            self.load_or_create()
        assert self._fernet is not None
        return self._fernet

    def seal(self, secret: str) -> str:
        return self._box.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._box.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretBoxError("a stored secret does not open with this key file") from None
