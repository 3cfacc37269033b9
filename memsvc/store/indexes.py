"""Keeps each cube's vector index in step with the database.

The database is the source of truth. Every record write appends to the change log; an index
remembers the last change sequence it covers. Before a search, and after a write, the index
catches up by re-reading only the records changed since then, so writes from other threads or
processes are seen too. A missing, corrupt or foreign index file is rebuilt from the records.
Files are saved at most every `flush_seconds` (and on close): an unsaved index loses nothing,
it is caught up from the change log on the next start.

Each cube's index is built from its spec (store.index_spec): the cube's `search_mode` (an index
spec string or a legacy mode name), else the service default; a legacy name takes the service
oversample. The index file's header keeps the spec it was built with.

Recall may skip the change-log check when the index was checked less than `sync_seconds` ago:
writes made through this manager are applied at once anyway, so only other processes' writes
(other server workers, the CLI) can take up to `sync_seconds` to show.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from memsvc.store.database import Database
from memsvc.store.index_spec import IndexSpec, parse_index_spec
from memsvc.store.orm import CubeRow
from memsvc.store.repos.changes import changes_since, max_change_seq
from memsvc.store.repos.queries import active_text_rows, active_vectors
from memsvc.store.text_index import CubeTextIndex, TextDoc
from memsvc.store.vector_index import CubeIndex, IndexFileError, read_index_file, write_index_file

__all__ = ["IndexManager", "IndexState"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexState:
    cube_id: str
    vectors: int
    seq: int
    db_seq: int
    file: str
    file_exists: bool
    last_rebuild_reason: str | None
    mode: str  # the legacy name of the spec's encoding: exact, int8, binary+rescore
    spec: str = "Flat"  # the canonical index spec, e.g. RBin,Rescore20


class IndexManager:
    def __init__(
        self,
        db: Database,
        directory: Path,
        *,
        flush_seconds: float = 5.0,
        sync_seconds: float = 0.0,
        search_mode: str = "binary+rescore",
        oversample: int = 20,
        analyzer: Callable[[Any], TextDoc] | None = None,
    ) -> None:
        self.db = db
        self.directory = directory
        self.flush_seconds = flush_seconds
        self.sync_seconds = sync_seconds
        self.search_mode = search_mode
        self.oversample = oversample
        self.default_spec = parse_index_spec(search_mode, oversample=oversample)
        self._indexes: dict[int, CubeIndex] = {}
        self._checked_at: dict[int, float] = {}
        self._saved_at: dict[int, float] = {}
        self._rebuild_reason: dict[int, str] = {}
        self._lock = threading.RLock()
        # The side index (keywords, entities, sessions, times) of a cube, built on first use
        # by `text_for` with `analyzer` (a record row -> TextDoc, supplied by the layer above).
        self.analyzer = analyzer
        self._texts: dict[int, CubeTextIndex] = {}
        self._building: dict[int, threading.Lock] = {}

    def path_for(self, cube: CubeRow) -> Path:
        return self.directory / f"{cube.id}.faiss"

    # ---- loading and syncing ------------------------------------------------------------------

    def get(
        self, cube: CubeRow, session: Session | None = None, *, fresh: bool = True
    ) -> CubeIndex:
        """The cube's index, caught up with every committed change (read through `session`
        when given, so a caller's reads share one snapshot and one transaction).
        `fresh=False` accepts an index checked within `sync_seconds` (for recall)."""
        with self._lock:
            index = self._indexes.get(cube.pk)
            if index is None:
                index = self._load(cube)
                index.set_spec(self.spec_for(cube))  # a no-op unless saved in another spec
                self._indexes[cube.pk] = index
            now = time.monotonic()
            if not fresh and now - self._checked_at.get(cube.pk, -1e18) < self.sync_seconds:
                return index
            self._checked_at[cube.pk] = now  # when the check began: a conservative age
            if session is None:
                with self.db.read() as s:
                    self._catch_up(cube, index, s)
            else:
                self._catch_up(cube, index, session)
            return index

    def mode_for(self, cube: CubeRow) -> str:
        """The cube's own search mode or index spec, as stored, else the service default."""
        return cube.search_mode or self.search_mode

    def spec_for(self, cube: CubeRow) -> IndexSpec:
        """The index spec the cube's index is built from (`mode_for`, parsed)."""
        if not cube.search_mode:
            return self.default_spec
        return parse_index_spec(cube.search_mode, oversample=self.oversample)

    def apply_write(
        self,
        cube: CubeRow,
        seqs: tuple[int, int, int] | None,
        pks: np.ndarray,
        vectors: np.ndarray,
        rows: list[Any] | None = None,
    ) -> None:
        """After a committed insert: add its vectors (and `rows` to the side index) directly
        when the index is exactly at the change just before it (no read-back); otherwise
        catch up from the change log."""
        with self._lock:
            index = self._indexes.get(cube.pk)
            text = self._texts.get(cube.pk)
            if index is not None and seqs is not None:
                first, last, n = seqs
                if index.seq == first - 1 and last - first + 1 == n == len(pks):
                    index.upsert(pks, vectors)
                    index.seq = last
                    if text is not None and text.seq == first - 1 and rows is not None:
                        text.upsert([self._analyze(r) for r in rows])
                        text.seq = last
                    self._maybe_save(cube, index)
                    return
        self.get(cube)

    def _load(self, cube: CubeRow) -> CubeIndex:
        path = self.path_for(cube)
        try:
            index = read_index_file(path)
            if index.dim != cube.embedding_dim or index.model != cube.embedding_model:
                raise IndexFileError("index was built for another embedding model")
            with self.db.read() as s:
                db_seq = max_change_seq(s, cube.pk)
            if index.seq > db_seq:
                raise IndexFileError("index is newer than the database (restored backup?)")
            self._saved_at[cube.pk] = time.monotonic()
            return index
        except IndexFileError as exc:
            if not path.exists():
                return self._rebuild(cube, None)
            log.warning("rebuilding index for cube %s: %s", cube.id, exc)
            return self._rebuild(cube, str(exc))

    def _rebuild(self, cube: CubeRow, reason: str | None) -> CubeIndex:
        with self.db.read() as s:
            seq = max_change_seq(s, cube.pk)
            pks, vecs = active_vectors(s, cube.pk, dim=cube.embedding_dim)
        index = CubeIndex(
            cube.embedding_dim, cube.embedding_model, seq=seq, spec=self.spec_for(cube)
        )
        index.upsert(pks, vecs)
        if reason is not None:
            self._rebuild_reason[cube.pk] = reason
        self._save(cube, index)
        return index

    def _catch_up(self, cube: CubeRow, index: CubeIndex, s: Session) -> None:
        new_seq, changed = changes_since(s, cube.pk, index.seq)
        if not changed:
            return
        pks, vecs = active_vectors(s, cube.pk, changed, dim=cube.embedding_dim)
        index.remove(np.asarray(changed, dtype=np.int64))
        index.upsert(pks, vecs)
        text = self._texts.get(cube.pk)
        if text is not None and text.seq == index.seq:  # else it catches up in `text_for`
            self._apply_text(text, s, cube.pk, changed, new_seq)
        index.seq = new_seq
        self._maybe_save(cube, index)

    def text_for(self, cube: CubeRow, session: Session) -> CubeTextIndex:
        """The cube's side index, caught up through `session`'s snapshot. The first call
        builds it from the records outside the manager's lock (seconds at 100k records), so
        recalls on other cubes do not wait; concurrent first calls on one cube build once."""
        with self._lock:
            text = self._texts.get(cube.pk)
            build_lock = self._building.setdefault(cube.pk, threading.Lock())
        if text is None:
            with build_lock:
                with self._lock:
                    text = self._texts.get(cube.pk)
                if text is None:
                    seq = max_change_seq(session, cube.pk)  # the snapshot read below
                    text = CubeTextIndex(seq=seq)
                    rows = active_text_rows(session, cube.pk)
                    text.upsert([self._analyze(r) for r in rows])
                    with self._lock:
                        text = self._texts.setdefault(cube.pk, text)
        with self._lock:
            index = self._indexes.get(cube.pk)
            if index is None or text.seq != index.seq:  # in step: no query at all
                new_seq, changed = changes_since(session, cube.pk, text.seq)
                if changed:
                    self._apply_text(text, session, cube.pk, changed, new_seq)
            return text

    def _analyze(self, row: Any) -> TextDoc:
        if self.analyzer is None:
            raise RuntimeError("this IndexManager has no analyzer for a side index")
        return self.analyzer(row)

    def _apply_text(
        self, text: CubeTextIndex, s: Session, cube_pk: int, changed: list[int], new_seq: int
    ) -> None:
        text.remove(changed)
        text.upsert([self._analyze(r) for r in active_text_rows(s, cube_pk, changed)])
        text.seq = new_seq

    # ---- persistence ----------------------------------------------------------------------------

    def _maybe_save(self, cube: CubeRow, index: CubeIndex) -> None:
        if time.monotonic() - self._saved_at.get(cube.pk, 0.0) >= self.flush_seconds:
            self._save(cube, index)

    def _save(self, cube: CubeRow, index: CubeIndex) -> None:
        write_index_file(self.path_for(cube), index)
        index.dirty = False
        self._saved_at[cube.pk] = time.monotonic()

    def flush(self) -> None:
        """Save every index with unsaved changes."""
        with self._lock:
            cubes = self._cube_rows(list(self._indexes))
            for pk, index in self._indexes.items():
                if index.dirty and pk in cubes:
                    self._save(cubes[pk], index)

    def _cube_rows(self, pks: list[int]) -> dict[int, CubeRow]:
        if not pks:
            return {}
        with self.db.read() as s:
            return {c.pk: c for c in s.scalars(select(CubeRow).where(CubeRow.pk.in_(pks)))}

    def rebuild(self, cube: CubeRow) -> CubeIndex:
        with self._lock:
            self._texts.pop(cube.pk, None)
            index = self._rebuild(cube, "requested")
            self._indexes[cube.pk] = index
            return index

    def drop(self, cube: CubeRow) -> None:
        with self._lock:
            self._indexes.pop(cube.pk, None)
            self._texts.pop(cube.pk, None)
            self._saved_at.pop(cube.pk, None)
            self._checked_at.pop(cube.pk, None)
            self.path_for(cube).unlink(missing_ok=True)

    def loaded_counts(self) -> dict[int, int]:
        """Vectors per cube pk, for the indexes already in memory (loads nothing)."""
        with self._lock:
            return {pk: idx.count for pk, idx in self._indexes.items()}

    def state(self, cube: CubeRow) -> IndexState:
        index = self.get(cube)
        with self.db.read() as s:
            db_seq = max_change_seq(s, cube.pk)
        path = self.path_for(cube)
        return IndexState(
            cube_id=cube.id,
            vectors=index.count,
            seq=index.seq,
            db_seq=db_seq,
            file=str(path),
            file_exists=path.exists(),
            last_rebuild_reason=self._rebuild_reason.get(cube.pk),
            mode=index.mode,
            spec=index.spec.describe(),
        )
