"""Tier records: the reads behind the activation and parametric tiers (memsvc/tiers.py), the
write lock of a tier record, and the recall-event window the scheduler promotes from.

Record changes go through `Records` (`tx.records.insert` / `change` / `set_recalled`); this
module only finds rows and hands back snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, func, select, text
from sqlalchemy.orm import Session, lazyload

from memsvc.store.data import RecordData
from memsvc.store.orm import TIERED, RecallEventRow, RecordRow
from memsvc.store.repos.changes import lock_cube_changes

__all__ = ["TierRecords"]


def _records(s: Session, q: Select[tuple[RecordRow]]) -> list[RecordData]:
    return [RecordData.of(r) for r in s.scalars(q.options(lazyload(RecordRow.cube)))]


class TierRecords:
    """Lookups by record id with no tenant check: the tiers are handed ids the caller's
    cube access was checked for (`CubeService.record`), or ids they wrote themselves."""

    def __init__(self, s: Session, *, is_sqlite: bool) -> None:
        self._s = s
        self._is_sqlite = is_sqlite

    def of_tier(self, cube_pk: int, tier: str) -> list[RecordData]:
        """A cube's active records of one tier, in pk order."""
        return _records(
            self._s,
            select(RecordRow)
            .where(
                RecordRow.cube_pk == cube_pk,
                RecordRow.tier == tier,
                RecordRow.status == "active",
            )
            .order_by(RecordRow.pk),
        )

    def plain_active(self, cube_pk: int, limit: int) -> list[RecordData]:
        """The first `limit` active plaintext records of a cube, in pk order."""
        return _records(
            self._s,
            select(RecordRow)
            .where(
                RecordRow.cube_pk == cube_pk,
                RecordRow.tier == "plaintext",
                RecordRow.status == "active",
            )
            .order_by(RecordRow.pk)
            .limit(limit),
        )

    def by_id(self, record_id: str) -> RecordData | None:
        found = _records(self._s, select(RecordRow).where(RecordRow.id == record_id))
        return found[0] if found else None

    def by_ids(self, record_ids: Sequence[str]) -> dict[str, RecordData]:
        """The records that exist among `record_ids` (any cube, any status), by id."""
        found = _records(self._s, select(RecordRow).where(RecordRow.id.in_(list(record_ids))))
        return {r.id: r for r in found}

    def active_versions(self, record_ids: Sequence[str]) -> dict[str, int]:
        """id -> version of the active records among `record_ids`."""
        q = select(RecordRow.id, RecordRow.version).where(
            RecordRow.id.in_(list(record_ids)), RecordRow.status == "active"
        )
        return {str(i): int(v) for i, v in self._s.execute(q).all()}

    def active_ids(self, cube_pk: int, record_ids: Sequence[str]) -> set[str]:
        """The ids among `record_ids` of active records in the cube."""
        q = select(RecordRow.id).where(
            RecordRow.id.in_(list(record_ids)),
            RecordRow.status == "active",
            RecordRow.cube_pk == cube_pk,
        )
        return set(self._s.scalars(q))

    def for_write(self, record_id: str) -> RecordData | None:
        """The record as the last writer left it, its cube's change-log lock held first (see
        `lock_cube_changes`): what removing a tier record starts from."""
        row = self._s.scalar(select(RecordRow).where(RecordRow.id == record_id))
        if row is None:
            return None
        lock_cube_changes(self._s, row.cube_pk)
        if not self._is_sqlite:  # read before the lock: another writer may have won
            self._s.refresh(row)
        return RecordData.of(row)

    def tiered_cubes(self) -> set[int]:
        """Pks of the cubes holding any record that is not plaintext (any status): the ones
        whose caches and adapters depend on things outside the database (the LM, tier
        files). Read from a partial index of those records, once per process."""
        # The condition as the partial index states it (a literal, not a bound parameter):
        # only then do SQLite and PostgreSQL read the index instead of every record.
        q = select(RecordRow.cube_pk).where(text(TIERED)).distinct()
        return {int(pk) for pk in self._s.scalars(q)}

    def count_tiered(self, cube_pk: int) -> int:
        """How many records of the cube (any status) are not plaintext (read from the partial
        index, as `tiered_cubes` is: a cube of plaintext alone costs no scan of its records)."""
        q = (
            select(func.count())
            .select_from(RecordRow)
            .where(RecordRow.cube_pk == cube_pk, text(TIERED))
        )
        return int(self._s.scalar(q) or 0)

    def hot_records(self, cube_pk: int, since: datetime, recalls: int) -> list[int]:
        """Pks of the cube's records recalled at least `recalls` times since `since`."""
        q = (
            select(RecallEventRow.record_pk, func.sum(RecallEventRow.n))
            .where(RecallEventRow.cube_pk == cube_pk, RecallEventRow.at >= since)
            .group_by(RecallEventRow.record_pk)
            .having(func.sum(RecallEventRow.n) >= recalls)
        )
        return [int(pk) for pk, _ in self._s.execute(q)]

    def drop_recall_events(self, cube_pk: int, before: datetime) -> None:
        """Forget the cube's recall events older than `before`."""
        table = RecallEventRow.__table__
        self._s.execute(table.delete().where(table.c.cube_pk == cube_pk, table.c.at < before))
