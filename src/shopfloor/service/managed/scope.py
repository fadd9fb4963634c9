"""Whose agents and managed sessions a caller sees."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    """An organisation's (None: every organisation's, the admin key) and, within it, one
    environment's (None: all of them; a key limited to one environment). A key limited to an
    environment has been checked to be of that environment's organisation."""

    org_id: str | None = None
    environment: str | None = None


EVERYTHING = Scope()
