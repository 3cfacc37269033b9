"""A record's and a cube's life after it is written: delete, maintenance and its runs.

Maintenance (memsvc/maintenance.py) runs supersession, organization, forgetting and index
catch-up on one cube; here it is started for the caller's cubes and its runs are read back.
"""

from __future__ import annotations

from collections.abc import Callable

from memsvc.maintenance import MaintenanceReport, last_runs, maintain_cube
from memsvc.models import MaintenanceRun
from memsvc.services.cubes import CubeService
from memsvc.store.data import RecordData

__all__ = ["LifecycleService", "run_model"]


def run_model(rep: MaintenanceReport) -> MaintenanceRun:
    return MaintenanceRun(
        cube=rep.cube,
        trigger=rep.trigger,
        started_at=rep.started_at,
        finished_at=rep.finished_at,
        counts=rep.counts,
    )


class LifecycleService:
    def __init__(self, cubes: CubeService, files_gone: Callable[[RecordData], None]) -> None:
        self.cubes = cubes
        self.engine = cubes.engine
        self._files_gone = files_gone

    def delete(self, id: str, *, hard: bool = False) -> None:
        with self.engine.db.writing() as tx:
            row, cube = self.cubes.located_for_write(tx, id)
            if hard:
                tx.records.hard_delete(row.pk)
            elif row.status != "deleted":
                now = self.engine.now()
                tx.records.change(
                    row.pk, {"status": "deleted"}, change="delete", at=now, op="delete"
                )
        self._files_gone(row)
        self.engine.indexes.get(cube)

    def maintain(self, cube: str | None = None) -> list[MaintenanceRun]:
        with self.engine.db.reading() as tx:
            if cube is not None:
                cubes = [self.cubes.find(tx, cube, write=True)]
            else:
                cubes = tx.cubes.owned(self.cubes.tenant_pk)
        return [run_model(maintain_cube(self.engine, c, trigger="manual")) for c in cubes]

    def maintenance_runs(self, cube: str | None = None) -> list[MaintenanceRun]:
        with self.engine.db.reading() as tx:
            rows = [self.cubes.find(tx, cube)] if cube else tx.cubes.owned(self.cubes.tenant_pk)
            cubes = {c.pk: c.name for c in rows}
            runs = last_runs(tx, list(cubes))
            return [
                MaintenanceRun(
                    cube=cubes[pk],
                    trigger=r.trigger,
                    started_at=r.started_at,
                    finished_at=r.finished_at,
                    counts=r.counts or {},
                    error=r.error,
                )
                for pk, r in sorted(runs.items())
            ]
