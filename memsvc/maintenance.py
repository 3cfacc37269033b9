"""Maintenance of one cube: the passes that keep memory organized and current.

Order matters and each pass is idempotent (a second run right after the first changes
nothing): reinforcement is written first so retention is read fresh; supersession closes
old facts before organization links what stays; forgetting demotes and archives; the
memory tiers promote hot records to KV caches, rebuild stale ones and evict beyond the
budget; the index, if loaded, then catches up with everything in one go (an unloaded one
stays out: its next load catches up). Each pass commits its own transactions, so concurrent
writes interleave with a run instead of waiting for all of it, and a pass reads only
committed state. The run and its counts are recorded in `maintenance_runs`.

A scheduled tick maintains only the cubes that are due (`is_due`), so thousands of idle
cubes cost one query, not thousands of runs. A cube is due when it was never maintained, or
its last run failed or never finished, or since that run began a record changed (a change-log
row past the seq the run started at: adds, updates, deletes, imports, tier records) or one
of its records was recalled (a recall event: reinforcement feeds forgetting's re-embedding
and the tiers' promotion), or that run began `maintain_idle_seconds` ago or more (forgetting
and the recall window move with time alone; each cube's deadline falls in the last quarter of
that, spread by its pk, so cubes swept together do not all come due in one tick). A run's own
changes make its cube due once more; that run finds nothing left (the passes are idempotent)
and the cube rests. What lies outside the database (the LM behind the caches, tier files)
changes with a process: its first tick also maintains every cube holding KV caches or
adapters. Not every cube: a worker restarting over 20,000 cubes would run 20,000
maintenances beside its traffic; a changed setting (a forgetting threshold) reaches idle
plaintext cubes by the idle sweep, or at once with `memsvc maintain-all`. Deleted cubes'
files are swept once per tick, whatever is due. Left to the idle sweep: a cache restored or
rebuilt (no change-log row), and another worker's recalls flushed while a run was starting.
Manual maintenance (`maintain`, `maintain_all`) runs what it names.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from memsvc.forgetting import forget_pass
from memsvc.organize import organize_pass
from memsvc.retrieval.analyze import stored_anchor
from memsvc.store.coordination import acquire_lease, release_lease
from memsvc.store.data import CubeActivity, CubeData, RunData
from memsvc.store.database import Database
from memsvc.store.tx import Tx
from memsvc.supersession import supersede_pass

if TYPE_CHECKING:  # the engine builds CubeLocks: a runtime import would be a cycle
    from memsvc.services.engine import Engine

__all__ = [
    "CubeLocks",
    "Lease",
    "MaintenanceReport",
    "Scheduler",
    "anchor_pass",
    "due_cubes",
    "is_due",
    "last_runs",
    "maintain_cube",
    "run_counts",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintenanceReport:
    cube: str
    trigger: str
    started_at: datetime
    finished_at: datetime
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return sum(v for k, v in self.counts.items() if k != "reinforced")


def maintain_cube(engine: Engine, cube: CubeData, *, trigger: str = "manual") -> MaintenanceReport:
    """Every pass over `cube` under its lock, recorded as one maintenance run."""
    st = engine.settings
    started = engine.clock.now()
    with engine.db.writing() as tx:
        run_pk = tx.runs.start(cube.pk, trigger, started)
    counts: dict[str, int] = {"reinforced": engine.reinforcer.flush()}
    error = None
    try:
        with engine.locks.for_cube(cube.pk):
            now = engine.clock.now()
            counts.update(supersede_pass(engine.db, cube, now))
            counts.update(anchor_pass(engine.db, cube))
            counts.update(
                organize_pass(
                    engine.db,
                    cube,
                    now,
                    related_threshold=st.related_threshold,
                    duplicate_threshold=st.duplicate_threshold,
                    namer=engine.topic_namer,
                )
            )
            if st.forgetting:
                counts.update(
                    forget_pass(engine.db, cube, now, engine.policy, engine.embedder.encode)
                )
            counts.update(
                engine.tiers.maintain(
                    cube,
                    now,
                    recalls=st.promote_recalls,
                    window_hours=st.promote_window_hours,
                )
            )
            # An index in memory catches up with every change above; one that is not stays
            # out (its next load catches up), so a sweep over every cube leaves the hot set.
            vectors = engine.indexes.catch_up_loaded(cube)
            if vectors is not None:
                counts["index_vectors"] = vectors
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        finished = engine.clock.now()
        with engine.db.writing() as tx:
            tx.runs.finish(run_pk, finished, counts, error)
    return MaintenanceReport(cube.name, trigger, started, finished, counts)


def anchor_pass(db: Database, cube: CubeData, batch: int = 2000) -> dict[str, int]:
    """Store the time anchor of records that have none (written before migration 0011, or
    whose event time changed), so their cube's next load takes it rather than resolving it
    (retrieval.analyze.stored_anchor). A batch a transaction; a value a concurrent write
    makes stale fails its checksum at load and is resolved there."""
    done = last = 0
    while True:
        with db.reading() as tx:
            todo = tx.lifecycle.unanchored(cube.pk, batch, after_pk=last)
        if todo:
            last = todo[-1][0]  # onward by pk: a row a write empties again waits a run
        values = []
        for pk, content, source, when in todo:
            anchor = stored_anchor(content, source, when)
            if anchor is not None:
                values.append((pk, anchor))
        if values:
            with db.writing() as tx:
                tx.lifecycle.set_time_anchors(values)
        done += len(values)
        if len(todo) < batch:
            return {"anchored": done}


def idle_deadline(cube_pk: int, idle_seconds: float) -> timedelta:
    """How long after its last run an idle cube comes due: in the last quarter of
    `idle_seconds`, by a hash of its pk (fixed per cube, so the spread lasts)."""
    spread = ((cube_pk * 2654435761) & 0xFFFFFFFF) / 2**32
    return timedelta(seconds=idle_seconds * (1 - spread / 4))


def is_due(seen: CubeActivity | None, now: datetime, idle_seconds: float) -> bool:
    """Whether a scheduled tick maintains the cube (the rule is in the module docstring)."""
    if seen is None or seen.run_started_at is None:
        return True  # never maintained (or made after the activity was read)
    if seen.run_finished_at is None or seen.run_error is not None:
        return True  # failed, cut short, or running elsewhere: try again
    if seen.run_change_seq is None or seen.newest_change_seq > seen.run_change_seq:
        return True  # a record changed since the run began (or a run from before 0008)
    if seen.newest_recall_at is not None and seen.newest_recall_at >= seen.run_started_at:
        return True
    return now - seen.run_started_at >= idle_deadline(seen.cube_pk, idle_seconds)


def due_cubes(engine: Engine, cubes: Sequence[CubeData]) -> list[CubeData]:
    """The `cubes` a scheduled tick maintains now. This process's buffered recalls are
    written first, so they count as recall events."""
    idle = engine.settings.maintain_idle_seconds
    if idle <= 0:
        return list(cubes)
    engine.reinforcer.flush()
    with engine.db.reading() as tx:
        seen = tx.runs.activity()
    now = engine.clock.now()
    return [c for c in cubes if is_due(seen.get(c.pk), now, idle)]


def last_runs(tx: Tx, cube_pks: list[int]) -> dict[int, RunData]:
    """The newest finished run of each cube."""
    return tx.runs.last(cube_pks)


def run_counts(tx: Tx, cube_pks: list[int]) -> dict[int, int]:
    """Finished runs per cube."""
    return tx.runs.counts(cube_pks)


class CubeLocks:
    """One maintenance at a time per cube in this process (the scheduler and an on-demand
    call may meet); passes are idempotent, so two processes at once only repeat work."""

    def __init__(self) -> None:
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def for_cube(self, cube_pk: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(cube_pk, threading.Lock())


class Lease:
    """A named lease in the database, held by this process: with several workers on one
    database only the holder runs the scheduled maintenance. The holder renews it at every
    tick; if it dies, the lease lapses after `ttl` and another worker takes over."""

    def __init__(self, db: Database, name: str, ttl: float) -> None:
        self.db = db
        self.name = name
        self.ttl = ttl
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:128]

    def acquire(self) -> bool:
        return acquire_lease(self.db, self.name, self.holder, self.ttl, time.time())

    def release(self) -> None:
        release_lease(self.db, self.name, self.holder)


class Scheduler:
    """Runs `job()` every `interval` seconds on a daemon thread until `stop()`; with a
    `lease`, only while this process holds it (`skipped` counts the ticks it did not)."""

    def __init__(
        self, job: Callable[[], object], interval: float, *, lease: Lease | None = None
    ) -> None:
        self.job = job
        self.interval = interval
        self.lease = lease
        self.runs = 0
        self.skipped = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memsvc-maintenance", daemon=True)

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.lease is not None:
            try:
                self.lease.release()
            except Exception:  # it lapses after its ttl anyway
                log.warning("could not release the %s lease", self.lease.name, exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.lease is not None and not self.lease.acquire():
                    self.skipped += 1
                    continue
                self.job()
                self.runs += 1
            except Exception:  # the next tick tries again; the run row records the error
                self.failures += 1
                log.exception("scheduled maintenance failed")
