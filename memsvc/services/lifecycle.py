"""A record's and a cube's life after it is written: delete, maintenance and its runs.

Maintenance (memsvc/maintenance.py) runs supersession, organization, forgetting and index
catch-up on one cube; here it is started for the caller's cubes and its runs are read back.
"""

from __future__ import annotations

from collections.abc import Callable

from memsvc.maintenance import MaintenanceReport, last_runs, maintain_cube
from memsvc.models import MaintenanceRun
from memsvc.services.cubes import CubeService
from memsvc.store.data import CubeData, RecordData
from memsvc.store.tx import Tx
from memsvc.tiers import source_ids

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
            gone = [row]
            if hard:
                gone += self._purge(tx, row, cube)
            elif row.status != "deleted":
                now = self.engine.now()
                tx.records.change(
                    row.pk, {"status": "deleted"}, change="delete", at=now, op="delete"
                )
        for r in gone:
            self._files_gone(r)
        self.engine.indexes.get(cube)
        if hard:
            self.engine.db.checkpoint()

    @staticmethod
    def _purge(tx: Tx, row: RecordData, cube: CubeData) -> list[RecordData]:
        """Hard delete: the record and everything derived from its text. The activation
        and parametric records built from it (in any status: a deleted cache keeps the
        text in its content and history) go with their files; a retrained adapter is a new
        `consolidate`. Entities no other record names go. Topic labels are words of their
        members, so a tree the record hangs in is dropped, and the next maintenance builds
        it again from what is left. Returns the tier records purged with it."""
        derived = []
        if row.tier == "plaintext":
            derived = [r for r in tx.records.tier_records(cube.pk) if row.id in source_ids(r)]
        in_tree = tx.topics.holds(cube.pk, row.pk)
        for r in (row, *derived):
            tx.records.hard_delete(r.pk)
        tx.records.drop_orphan_entities(cube.pk)
        if in_tree:
            tx.topics.clear(cube.pk)
        return derived

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
