"""Operating the service: API keys, the rate limiter, the maintenance lease, maintenance of
every cube, cube stats and index operations.

These views span tenants (the scheduler's, the metrics' and the key administrator's calls) or
manage the derived indexes of one cube; they are not scoped to the caller's tenant.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from memsvc.errors import StorageError
from memsvc.keys import KeyManager
from memsvc.maintenance import Lease, due_cubes, last_runs, maintain_cube, run_counts
from memsvc.models import IndexCache, IndexInfo, MaintenanceRun
from memsvc.ratelimit import RateLimiter
from memsvc.services.cubes import CubeService
from memsvc.services.lifecycle import run_model
from memsvc.services.transfer import STAGING_TENANT
from memsvc.store.data import CubeData
from memsvc.store.errors import StoreError
from memsvc.store.tx import Tx
from memsvc.store.vector_index import IndexFileError

__all__ = ["AdminService"]

log = logging.getLogger(__name__)


class AdminService:
    def __init__(self, cubes: CubeService) -> None:
        self.cubes = cubes
        self.engine = cubes.engine
        self._swept = False  # whether this process has had its first scheduled tick

    @property
    def keys(self) -> KeyManager:
        return self.engine.keys

    @property
    def rate_limiter(self) -> RateLimiter:
        return self.engine.rate_limiter

    def maintenance_lease(self, ttl: float) -> Lease:
        return Lease(self.engine.db, "maintenance", ttl)

    def _tenant_cubes(self, tx: Tx) -> list[CubeData]:
        """Every tenant's cubes; not the staging cubes imports are building (no one's yet)."""
        return [c for c in tx.cubes.all() if c.tenant != STAGING_TENANT]

    def maintain_all(self, *, only_due: bool = False) -> list[MaintenanceRun]:
        """Maintenance of every tenant's cubes; `only_due`, the scheduler's tick: only the
        cubes due (memsvc/maintenance.py `is_due`), and on this process's first tick also
        every cube holding KV caches or adapters (not every cube: a restart over 20,000
        cubes would maintain them all).
        A user's call (`Memory.maintain_all`) maintains them all."""
        try:  # expired idempotency keys of adds, every tenant's
            with self.engine.db.writing() as tx:
                tx.idempotency.purge(self.engine.now())
        except StoreError:  # the next tick tries again
            log.exception("purging expired idempotency keys failed")
        with self.engine.db.reading() as tx:
            cubes = self._tenant_cubes(tx)
        if only_due:
            try:  # deleted cubes' files: a sweep of its own, whichever cubes are due
                self.engine.tiers.sweep_cubes()
            except Exception:
                log.exception("sweeping deleted cubes' tier files failed")
            due = due_cubes(self.engine, cubes)
            if not self._swept:  # the LM and tier files may differ from the last process's
                with self.engine.db.reading() as tx:
                    tiered = tx.tiers.tiered_cubes()
                due_pks = {c.pk for c in due}
                due = [c for c in cubes if c.pk in due_pks or c.pk in tiered]
            cubes = due
            self._swept = True
        out = []
        for c in cubes:
            try:
                out.append(run_model(maintain_cube(self.engine, c, trigger="scheduled")))
            except Exception:  # recorded in its run row; the next tick tries again
                log.exception("maintenance of cube %s failed", c.id)
        return out

    def cube_stats(self) -> list[dict[str, Any]]:
        with self.engine.db.reading() as tx:
            cubes = self._tenant_cubes(tx)
            pks = [c.pk for c in cubes]
            counts = tx.cubes.record_counts(pks)
            n_runs = run_counts(tx, pks)
            latest = last_runs(tx, pks)
        loaded = self.engine.indexes.loaded_counts()
        return [
            {
                "cube_id": c.id,
                "tenant": c.tenant,
                "records": counts[c.pk],
                "index_vectors": loaded.get(c.pk),
                "maintenance": {
                    "runs": n_runs.get(c.pk, 0),
                    "last": None
                    if c.pk not in latest
                    else {
                        "finished_at": latest[c.pk].finished_at,
                        "counts": latest[c.pk].counts or {},
                    },
                },
            }
            for c in cubes
        ]

    def index_info(self, cube: str) -> IndexInfo:
        with self.engine.db.reading() as tx:
            row = self.cubes.find(tx, cube)
        st = self.engine.indexes.state(row)
        return IndexInfo(
            cube=row.name,
            vectors=st.vectors,
            seq=st.seq,
            db_seq=st.db_seq,
            file=st.file,
            file_exists=st.file_exists,
            last_rebuild_reason=st.last_rebuild_reason,
            mode=st.mode,
            spec=st.spec,
        )

    def index_cache(self) -> IndexCache:
        return IndexCache(**asdict(self.engine.indexes.stats()))

    def rebuild_index(self, cube: str) -> IndexInfo:
        with self.engine.db.reading() as tx:
            row = self.cubes.find(tx, cube)
        self.engine.indexes.rebuild(row)
        return self.index_info(cube)

    def load_indexes(self) -> int:
        with self.engine.db.reading() as tx:
            cubes = tx.cubes.all()
        for c in cubes:
            self.engine.indexes.get(c)
        return len(cubes)

    def flush(self) -> None:
        try:
            self.engine.indexes.flush()
        except (StoreError, IndexFileError, OSError) as exc:
            raise StorageError(f"index flush failed: {exc}") from exc
