"""The change log: one row per record change, the indexes' catch-up feed.

Every record change appends here (`add_change`), in order per cube (`lock_cube_changes`)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from memsvc.store.orm import (
    ChangeRow,
    utcnow,
)


def lock_cube_changes(s: Session, cube_pk: int) -> None:
    """Hold the cube's change-log lock until this transaction ends (PostgreSQL; SQLite's
    writers are one at a time already).

    Readers catch up with `seq > last seen`, which is only sound if a cube's changes commit
    in the order of their sequence numbers: without the lock, a write that drew seq 10 could
    commit after one that drew 11, and a worker that had read 11 would never see 10. Taken
    first in a transaction that writes a cube's records, so it never waits while holding a
    row lock another writer of the cube needs."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:ns, :pk)"), {"ns": 7301, "pk": cube_pk})


def add_change(s: Session, cube_pk: int, record_pks: Iterable[int], op: str) -> None:
    lock_cube_changes(s, cube_pk)  # re-entrant: usually taken at the start already
    now = utcnow()
    s.add_all(ChangeRow(cube_pk=cube_pk, record_pk=pk, op=op, created_at=now) for pk in record_pks)


def max_change_seq(s: Session, cube_pk: int) -> int:
    return int(s.scalar(select(func.max(ChangeRow.seq)).where(ChangeRow.cube_pk == cube_pk)) or 0)


def changes_since(s: Session, cube_pk: int, seq: int) -> tuple[int, list[int]]:
    """(newest seq, distinct record pks changed after `seq`)."""
    rows = s.execute(
        select(ChangeRow.seq, ChangeRow.record_pk).where(
            ChangeRow.cube_pk == cube_pk, ChangeRow.seq > seq
        )
    ).all()
    if not rows:
        return seq, []
    return max(r[0] for r in rows), sorted({r[1] for r in rows})


class Changes:
    def __init__(self, s: Session) -> None:
        self._s = s

    def lock(self, cube_pk: int) -> None:
        """Take the cube's change-log lock first in a write (see `lock_cube_changes`)."""
        lock_cube_changes(self._s, cube_pk)

    def append(self, cube_pk: int, record_pks: Iterable[int], op: str) -> None:
        add_change(self._s, cube_pk, record_pks, op)

    def newest(self, cube_pk: int) -> int:
        return max_change_seq(self._s, cube_pk)
