"""Errors the store raises for conditions the layers above handle."""

from __future__ import annotations


class DuplicateKey(Exception):
    """A row with the same primary or unique key exists already."""
