"""Maintenance runs: one row per pass over a cube, with what it changed (or its error), and
what happened to each cube since its last run (the scheduler's due check)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memsvc.store.data import CubeActivity, RunData
from memsvc.store.orm import ChangeRow, CubeRow, MaintenanceRunRow, RecallEventRow
from memsvc.store.repos.changes import max_change_seq

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
        """Record a run as begun, with the cube's newest change seq now (every change up to
        it is committed: a cube's changes commit in seq order, `lock_cube_changes`, so the
        run's passes will see them); returns its pk for `finish`."""
        row = MaintenanceRunRow(
            cube_pk=cube_pk,
            trigger=trigger,
            started_at=started_at,
            counts={},
            change_seq=max_change_seq(self._s, cube_pk),
        )
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

    def activity(self, cube_pks: Sequence[int] | None = None) -> dict[int, CubeActivity]:
        """`CubeActivity` of these cubes (None: every cube), in one query: per cube three
        index seeks (the newest run by `ix_maintenance_runs_cube_pk`, the newest change by
        `ix_changes_cube_seq`, the newest recall by `ix_recall_events_cube_at`), so its cost
        grows with the number of cubes, not with the size of the change log."""
        run = MaintenanceRunRow
        newest_run = select(func.max(run.pk)).where(run.cube_pk == CubeRow.pk)
        newest_seq = select(func.max(ChangeRow.seq)).where(ChangeRow.cube_pk == CubeRow.pk)
        newest_recall = select(func.max(RecallEventRow.at)).where(
            RecallEventRow.cube_pk == CubeRow.pk
        )
        cubes = select(
            CubeRow.pk,
            newest_run.scalar_subquery().label("run_pk"),
            newest_seq.scalar_subquery().label("seq"),
            newest_recall.scalar_subquery().label("recall_at"),
        )
        if cube_pks is None:
            parts = [cubes]
        else:
            pks = [int(p) for p in cube_pks]
            parts = [
                cubes.where(CubeRow.pk.in_(pks[i : i + 5000])) for i in range(0, len(pks), 5000)
            ]
        out: dict[int, CubeActivity] = {}
        for part in parts:
            c = part.subquery()
            q = select(
                c.c.pk,
                run.started_at,
                run.finished_at,
                run.error,
                run.change_seq,
                c.c.seq,
                c.c.recall_at,
            ).outerjoin(run, run.pk == c.c.run_pk)
            for pk, started, finished, error, run_seq, seq, recall in self._s.execute(q):
                out[pk] = CubeActivity(pk, started, finished, error, run_seq, int(seq or 0), recall)
        return out
