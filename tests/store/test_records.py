"""SessionRecord.from_row builds the same record as the dataclass's own __init__."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from shopfloor.store.records import SessionRecord


def _full_row() -> dict[str, Any]:
    row: dict[str, Any] = {f.name: None for f in dataclasses.fields(SessionRecord)}
    row.update(
        id="sess_1",
        queue="agentfactory",
        status="claimed",
        priority=3,
        queued_at=1,
        created_at=1,
        updated_at=2,
        lease_epoch=4,
        worker_id="wkr_1",
        extra={"k": "v"},
    )
    return row


def test_a_full_row_gives_the_record_init_gives() -> None:
    row = _full_row()
    record = SessionRecord.from_row(row)
    assert record == SessionRecord(**row)
    assert record.is_live and record.extra == {"k": "v"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = "completed"  # type: ignore[misc]


def test_a_partial_or_foreign_row_goes_through_init() -> None:
    row = _full_row()
    del row["priority"]
    with pytest.raises(TypeError, match="priority"):
        SessionRecord.from_row(row)
    with pytest.raises(TypeError, match="bogus"):
        SessionRecord.from_row({**_full_row(), "bogus": 1})
    partial: dict[str, Any] = {"id": "s", "queue": "q", "status": "pending", "priority": 1}
    partial.update(queued_at=1, created_at=1, updated_at=1)  # the rest take their defaults
    assert SessionRecord.from_row(partial) == SessionRecord(**partial)
