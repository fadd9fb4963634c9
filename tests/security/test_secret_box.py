"""Stored secrets are sealed under a key file outside the database: readable back with the
file, bound to the row they were sealed for, and refused when tampered with."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shopfloor.service.secret_box import SecretBox, SecretBoxError
from shopfloor.service.signing_keys import new_key, read_keys, write_keys


def test_a_sealed_secret_opens_only_with_its_key_and_context(tmp_path: Path) -> None:
    box = SecretBox(tmp_path / "keys" / "secret-keys.json")
    box.load_or_create(0)
    sealed = box.seal("ghp_very-secret", "git-source:1")
    assert "ghp_very-secret" not in sealed
    assert box.seal("ghp_very-secret", "git-source:1") != sealed  # a fresh nonce each time
    assert box.open(sealed, "git-source:1") == "ghp_very-secret"
    with pytest.raises(SecretBoxError, match="another row"):
        box.open(sealed, "git-source:2")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretBoxError):
        box.open(tampered, "git-source:1")
    assert stat.S_IMODE(box.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(box.path.parent.stat().st_mode) == 0o700


def test_another_process_reads_what_one_sealed_and_a_new_key_still_opens_old_values(
    tmp_path: Path,
) -> None:
    path = tmp_path / "secret-keys.json"
    first = SecretBox(path)
    first.load_or_create(0)
    sealed = first.seal("s3cret", "ctx")
    second = SecretBox(path)
    second.load_or_create(1)  # the file exists: the same key, not a new one
    assert second.open(sealed, "ctx") == "s3cret"
    write_keys(path, [new_key(2), *read_keys(path)])  # a newer key in front
    third = SecretBox(path)
    third.load_or_create(3)
    assert third.open(sealed, "ctx") == "s3cret"
    assert third.seal("x", "ctx").split(".")[1] != sealed.split(".")[1]
    stranger = SecretBox(tmp_path / "other.json")
    stranger.load_or_create(0)
    with pytest.raises(SecretBoxError, match="unknown key"):
        stranger.open(sealed, "ctx")
    with pytest.raises(SecretBoxError, match="not a sealed value"):
        stranger.open("plain", "ctx")
