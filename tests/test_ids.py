"""Id order is creation order: list pages and the environment API's cursors rely on it."""

from __future__ import annotations

import uuid

from shopfloor.ids import new_session_id, uuid7_hex


def test_ids_made_within_one_millisecond_still_increase() -> None:
    ids = [uuid7_hex() for _ in range(20_000)]  # far more than one per millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_are_version_7_uuids() -> None:
    for raw in (uuid7_hex() for _ in range(1_000)):
        parsed = uuid.UUID(raw)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_session_ids_keep_their_prefix() -> None:
    assert new_session_id().startswith("sess_")
