"""Store-level failures; `memsvc` maps them onto its public error tree at its boundary."""

from __future__ import annotations

__all__ = ["StoreConflict", "StoreError"]


class StoreError(Exception):
    """The database or an index file failed underneath."""


class StoreConflict(StoreError):
    """A uniqueness rule was violated (cube name, record id)."""
