"""Maintenance runs: one row per pass over a cube, with what it changed (or its error)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memsvc.store.data import RunData
from memsvc.store.orm import MaintenanceRunRow

__all__ = ["Runs"]


def _run(row: MaintenanceRunRow) -> RunData:
    return RunData(
        pk=row.pk,
        cube_pk=row.cube_pk,
        trigger=row.trigger,
        started_at=row.started_at,
        finished_at=row.finished_at,
        counts=dict(row.counts or {}),
        error=row.error,
    )


class Runs:
    def __init__(self, s: Session) -> None:
        self._s = s

    def start(self, cube_pk: int, trigger: str, started_at: datetime) -> int:
        """Record a run as begun; returns its pk for `finish`."""
        row = MaintenanceRunRow(cube_pk=cube_pk, trigger=trigger, started_at=started_at, counts={})
        self._s.add(row)
        self._s.flush()
        return row.pk

    def finish(
        self, pk: int, finished_at: datetime, counts: dict[str, Any], error: str | None = None
    ) -> None:
        """Close a run with its counts, and the error that ended it, if any (nothing when its
        cube, and so the run, was deleted meanwhile)."""
        row = self._s.get(MaintenanceRunRow, pk)
        if row is not None:
            row.finished_at = finished_at
            row.counts = {k: int(v) for k, v in counts.items()}
            row.error = error

    def last(self, cube_pks: Sequence[int]) -> dict[int, RunData]:
        """The newest finished run of each cube."""
        newest = (
            select(MaintenanceRunRow.cube_pk, func.max(MaintenanceRunRow.pk).label("pk"))
            .where(
                MaintenanceRunRow.cube_pk.in_(list(cube_pks)),
                MaintenanceRunRow.finished_at.is_not(None),
            )
            .group_by(MaintenanceRunRow.cube_pk)
            .subquery()
        )
        rows = self._s.scalars(
            select(MaintenanceRunRow).join(newest, MaintenanceRunRow.pk == newest.c.pk)
        )
        return {r.cube_pk: _run(r) for r in rows}

    def counts(self, cube_pks: Sequence[int]) -> dict[int, int]:
        """Finished runs per cube."""
        q = (
            select(MaintenanceRunRow.cube_pk, func.count())
            .where(
                MaintenanceRunRow.cube_pk.in_(list(cube_pks)),
                MaintenanceRunRow.finished_at.is_not(None),
            )
            .group_by(MaintenanceRunRow.cube_pk)
        )
        return {pk: int(n) for pk, n in self._s.execute(q)}
