"""Keeps each cube's vector index in step with the database, within a memory budget. (It is
longer than 500 lines: loading, catching up, the budget's accounting and eviction, and
persistence share one set of per-cube locks and must be read together.)

The database is the source of truth. Every record write appends to the change log; an index
remembers the last change sequence it covers. Before a search, and after a write, the index
catches up by re-reading only the records changed since then, so writes from other threads or
processes are seen too. A missing, corrupt or foreign index file is rebuilt from the records.
Files are saved at most every `flush_seconds` (and on close): an unsaved index loses nothing,
it is caught up from the change log on the next load. A cube with fewer than
`file_min_vectors` vectors keeps no file: reading its vectors from the database costs about
what reading the file does, and the fsync'd save was half of a small cube's first recall.

Each cube's index is built from its spec (store.index_spec): the cube's `search_mode` (an index
spec string or a legacy mode name), else the service default; a legacy name takes the service
oversample. The index file's header keeps the spec it was built with.

Recall may skip the change-log check when the index was checked less than `sync_seconds` ago:
writes made through this manager are applied at once anyway, so only other processes' writes
(other server workers, the CLI) can take up to `sync_seconds` to show.

Memory budget. A cube is loaded on first use, never ahead of it, and its vector index and side
index (BM25 postings, entities, sessions, times) are held together, counted at their `nbytes`
(vector codes, rescoring vectors, maps; estimates within a few percent of what tracemalloc
measures). Past `memory_bytes`, whole cubes are evicted, least recently used first. An evicted
cube loads again on its next use: the vectors from its index file (or the database) and the
change log since, the side index from the records (a small cube's in the same read as its
vectors: `_TEXT_WITH_LOAD_MAX`). A write to a cube that is not loaded
leaves it unloaded: the change log carries the write to its next load. A cube bigger than
the whole budget is loaded and served like any other, without evicting any other cube for
it, and is the first to go when another cube is loaded or grows: the worker holds at most
its budget plus that one cube (and, briefly, what in-flight searches still hold of an
evicted one).

Locks. Each cube has its own: its load, catch-ups, writes and rebuild take it, so concurrent
first uses of a cold cube wait for one load, and no call on another cube waits for it. Its
side index is built under a second lock of the cube's, so writes to the cube go on meanwhile.
The manager's own lock guards only its tables and figures, and is never held during I/O or
index work.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
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
from memsvc.store.repos.queries import active_rows, active_text_rows
from memsvc.store.text_index import CubeTextIndex, TextDoc
from memsvc.store.vector_index import CubeIndex, IndexFileError, read_index_file, write_index_file

__all__ = ["IndexCacheStats", "IndexManager", "IndexState"]

log = logging.getLogger(__name__)

# A cube's side index is built with its vectors' load, from the same read, up to this many
# records (a 200-record cube: 8 statements -> 5 for its first recall); a bigger one is built
# by its first recall under the build lock, so writes to the cube go on meanwhile.
_TEXT_WITH_LOAD_MAX = 1000
# A side index not built yet counts as this much (`IndexManager._settle`): measured, 4.6 MB
# for 2,760 LoCoMo turns (1.7 KB each), 26 KB for 6 short sentences (their own terms weigh).
_TEXT_BASE_BYTES = 4096
_TEXT_BYTES_PER_RECORD = 2048


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


@dataclass(frozen=True)
class IndexCacheStats:
    """This process's cube indexes in memory, and what keeping them there has cost."""

    budget_bytes: int | None  # None: no budget
    bytes: int  # held now: vector and side indexes of the loaded cubes
    cubes: int  # cubes loaded now
    hits: int  # index lookups that found the cube loaded
    misses: int  # index lookups that loaded it
    evictions: int  # cubes evicted to stay within the budget
    load_seconds: float  # spent loading vector indexes and building side indexes


class _Cube:
    """One cube's indexes in memory, what is known about them, and the locks ordering the
    work on them. `users` counts the calls inside, so the entry outlives an eviction
    until they leave (a load they wait for lands in the table, not in a lost entry)."""

    __slots__ = (
        "checked_at",
        "index",
        "lock",
        "nbytes",
        "saved_at",
        "text",
        "text_lock",
        "users",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()  # load, catch-up, writes, rebuild
        self.text_lock = threading.Lock()  # the side index's build
        self.index: CubeIndex | None = None  # None: not loaded
        self.text: CubeTextIndex | None = None  # kept only while the index is loaded
        self.checked_at = -math.inf
        self.saved_at = 0.0
        self.nbytes = 0  # what the budget counts for it (0 while not loaded)
        self.users = 0


class IndexManager:
    def __init__(
        self,
        db: Database,
        directory: Path,
        *,
        flush_seconds: float = 5.0,
        file_min_vectors: int = 0,
        sync_seconds: float = 0.0,
        search_mode: str = "binary+rescore",
        oversample: int = 20,
        analyzer: Callable[[Any], TextDoc] | None = None,
        memory_bytes: int | None = None,
    ) -> None:
        self.db = db
        self.directory = directory
        self.flush_seconds = flush_seconds
        self.file_min_vectors = file_min_vectors
        self.sync_seconds = sync_seconds
        self.search_mode = search_mode
        self.oversample = oversample
        self.default_spec = parse_index_spec(search_mode, oversample=oversample)
        # The side index (keywords, entities, sessions, times) of a cube, built on first use
        # by `text_for` with `analyzer` (a record row -> TextDoc, supplied by the layer above).
        self.analyzer = analyzer
        if memory_bytes is not None and memory_bytes < 1:
            raise ValueError("memory_bytes must be at least 1 (None: no budget)")
        self.memory_bytes = memory_bytes
        self._lock = threading.Lock()
        self._cubes: dict[int, _Cube] = {}  # loaded cubes and cubes with calls inside
        self._lru: OrderedDict[int, _Cube] = OrderedDict()  # loaded, least recent first
        self._used = 0
        self._hits = self._misses = self._evictions = 0
        self._load_seconds = 0.0
        self._rebuild_reason: dict[int, str] = {}

    def path_for(self, cube: CubeRow) -> Path:
        return self.directory / f"{cube.id}.faiss"

    # ---- loading and syncing ------------------------------------------------------------------

    def get(
        self, cube: CubeRow, session: Session | None = None, *, fresh: bool = True
    ) -> CubeIndex:
        """The cube's index, caught up with every committed change (read through `session`
        when given, so a caller's reads share one snapshot and one transaction), loaded
        first if it is not in memory. `fresh=False` accepts an index checked within
        `sync_seconds` (for recall)."""
        c = self._enter(cube.pk)
        loaded = False
        text: CubeTextIndex | None = None  # built with the load, when it is
        try:
            index = c.index
            if index is not None and not fresh and self._recent(c):
                return index
            with c.lock:
                index = c.index
                started = time.perf_counter()
                if index is None:
                    index, text = self._load(cube, c)
                    index.set_spec(self.spec_for(cube))  # a no-op unless saved in another spec
                    loaded = True
                elif not fresh and self._recent(c):  # checked by the call we waited for
                    return index
                c.checked_at = time.monotonic()  # when the check began: a conservative age
                if session is None:
                    with self.db.read() as s:
                        self._catch_up(cube, c, index, s)
                else:
                    self._catch_up(cube, c, index, session)
                if loaded:
                    self._install(cube.pk, c, index, text, time.perf_counter() - started)
                self._settle(c, index)
            return index
        finally:
            self._leave(cube.pk, c, hit=not loaded)

    def catch_up_loaded(self, cube: CubeRow) -> int | None:
        """Catch the cube's index up if it is in memory (its vector count), else None: a
        sweep over every cube (maintenance) must not load them all and push out the ones
        that are recalled."""
        c = self._enter(cube.pk)
        try:
            with c.lock:
                index = c.index
                if index is None:
                    return None
                c.checked_at = time.monotonic()
                with self.db.read() as s:
                    self._catch_up(cube, c, index, s)
                self._settle(c, index)
                return index.count
        finally:
            self._leave(cube.pk, c, hit=None)

    def _recent(self, c: _Cube) -> bool:
        return time.monotonic() - c.checked_at < self.sync_seconds

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
        keys: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """After a committed insert: add its vectors (and `rows` to the side index) directly
        when the index is exactly at the change just before it (no read-back); otherwise
        catch up from the change log. A cube not in memory stays out: its next load
        catches up. `keys` are the new records' sentence keys (owner pks, vectors)."""
        c = self._enter(cube.pk)
        try:
            with c.lock:
                index = c.index
                if index is None:
                    return
                text = c.text
                if seqs is not None:
                    first, last, n = seqs
                    direct = index.seq == first - 1 and last - first + 1 == n == len(pks)
                else:
                    direct = False
                if direct:
                    assert seqs is not None
                    index.upsert(pks, vectors)
                    if keys is not None:
                        index.add_keys(*keys)
                    index.seq = seqs[1]
                    if text is not None and text.seq == seqs[0] - 1 and rows is not None:
                        text.upsert([self._analyze(r) for r in rows])
                        text.seq = seqs[1]
                    self._maybe_save(cube, c, index)
                else:
                    c.checked_at = time.monotonic()
                    with self.db.read() as s:
                        self._catch_up(cube, c, index, s)
                self._settle(c, index)
        finally:
            self._leave(cube.pk, c, hit=None)

    def _load(self, cube: CubeRow, c: _Cube) -> tuple[CubeIndex, CubeTextIndex | None]:
        """The cube's vector index, from its file or rebuilt from the database, and its side
        index when it came from the same read (a small cube: `_TEXT_WITH_LOAD_MAX`)."""
        path = self.path_for(cube)
        try:
            index = read_index_file(path)
            if index.dim != cube.embedding_dim or index.model != cube.embedding_model:
                raise IndexFileError("index was built for another embedding model")
            with self.db.read() as s:
                db_seq = max_change_seq(s, cube.pk)
            if index.seq > db_seq:
                raise IndexFileError("index is newer than the database (restored backup?)")
            c.saved_at = time.monotonic()
            return index, None
        except IndexFileError as exc:
            if not path.exists():
                return self._rebuild(cube, c, None)
            log.warning("rebuilding index for cube %s: %s", cube.id, exc)
            return self._rebuild(cube, c, str(exc))

    def _rebuild(
        self, cube: CubeRow, c: _Cube, reason: str | None
    ) -> tuple[CubeIndex, CubeTextIndex | None]:
        with self.db.read() as s:
            seq = max_change_seq(s, cube.pk)
            rows = active_rows(s, cube.pk, dim=cube.embedding_dim, text=self.analyzer is not None)
        index = CubeIndex(
            cube.embedding_dim, cube.embedding_model, seq=seq, spec=self.spec_for(cube)
        )
        index.upsert(rows.pks, rows.vectors)
        index.add_keys(rows.key_owners, rows.keys)
        text = None
        if self.analyzer is not None and len(rows.text_rows) <= _TEXT_WITH_LOAD_MAX:
            text = CubeTextIndex(seq=seq)
            text.upsert([self._analyze(r) for r in rows.text_rows])
        if reason is not None:
            self._rebuild_reason[cube.pk] = reason
        self._save(cube, c, index)
        return index, text

    def _catch_up(self, cube: CubeRow, c: _Cube, index: CubeIndex, s: Session) -> None:
        new_seq, changed = changes_since(s, cube.pk, index.seq)
        if not changed:
            return
        text = c.text
        in_step = text is not None and text.seq == index.seq  # else it catches up in `text_for`
        rows = active_rows(s, cube.pk, changed, dim=cube.embedding_dim, text=in_step)
        index.remove(np.asarray(changed, dtype=np.int64))
        index.upsert(rows.pks, rows.vectors)
        index.add_keys(rows.key_owners, rows.keys)
        if in_step:
            assert text is not None
            self._apply_text(text, rows.text_rows, changed, new_seq)
        index.seq = new_seq
        self._maybe_save(cube, c, index)

    def text_for(self, cube: CubeRow, session: Session) -> CubeTextIndex:
        """The cube's side index, caught up through `session`'s snapshot. The first call
        builds it from the records under the cube's build lock (seconds at 100k records):
        concurrent first calls on one cube build once, and writes to it go on meanwhile.
        It is kept with the cube's vector index, and goes when the cube is evicted."""
        c = self._enter(cube.pk)
        try:
            text = c.text
            if text is None:
                with c.text_lock:
                    text = c.text
                    if text is None:
                        text = self._build_text(cube, c, session)
            with c.lock:
                index = c.index
                if index is None or text.seq != index.seq:  # in step: no query at all
                    new_seq, changed = changes_since(session, cube.pk, text.seq)
                    if changed:
                        rows = active_text_rows(session, cube.pk, changed)
                        self._apply_text(text, rows.text_rows, changed, new_seq)
                        if index is not None and c.text is text:
                            self._settle(c, index)
            return text
        finally:
            self._leave(cube.pk, c, hit=None)

    def _build_text(self, cube: CubeRow, c: _Cube, session: Session) -> CubeTextIndex:
        started = time.perf_counter()
        seq = max_change_seq(session, cube.pk)  # the snapshot read below
        text = CubeTextIndex(seq=seq)
        text.upsert([self._analyze(r) for r in active_text_rows(session, cube.pk)])
        with c.lock:
            index = c.index
            if index is not None:  # kept with the loaded cube; else served once, not kept
                c.text = text
                self._settle(c, index)
        with self._lock:
            self._load_seconds += time.perf_counter() - started
        return text

    def _analyze(self, row: Any) -> TextDoc:
        if self.analyzer is None:
            raise RuntimeError("this IndexManager has no analyzer for a side index")
        return self.analyzer(row)

    def _apply_text(
        self, text: CubeTextIndex, rows: list[Any], changed: list[int], new_seq: int
    ) -> None:
        """Bring the side index to `new_seq`: `changed` records out, the active ones of
        them (`rows`, their side-index fields) back in."""
        text.remove(changed)
        text.upsert([self._analyze(r) for r in rows])
        text.seq = new_seq

    # ---- the budget ---------------------------------------------------------------------------

    def _enter(self, pk: int) -> _Cube:
        """The cube's entry (made if new), with this call counted inside it; a loaded cube
        becomes the most recently used."""
        with self._lock:
            c = self._cubes.get(pk)
            if c is None:
                c = self._cubes[pk] = _Cube()
            elif c.index is not None:
                self._lru.move_to_end(pk)
            c.users += 1
            return c

    def _leave(self, pk: int, c: _Cube, *, hit: bool | None) -> None:
        """The call is done: count a lookup's hit or miss; forget an entry nobody is in
        and nothing is loaded for."""
        with self._lock:
            if hit is True:
                self._hits += 1
            elif hit is False:
                self._misses += 1
            c.users -= 1
            if not c.users and c.index is None and self._cubes.get(pk) is c:
                del self._cubes[pk]

    def _install(
        self,
        pk: int,
        c: _Cube,
        index: CubeIndex,
        text: CubeTextIndex | None,
        seconds: float,
    ) -> None:
        """A freshly loaded index (and the side index built with it, if any) becomes the
        cube's, the most recently used (its size is counted by the `_settle` that follows)."""
        with self._lock:
            self._used -= c.nbytes  # a rebuild replaces what was loaded
            c.index, c.text, c.nbytes = index, text, 0
            self._lru[pk] = c
            self._lru.move_to_end(pk)
            self._load_seconds += seconds

    def _settle(self, c: _Cube, index: CubeIndex) -> None:
        """Count the cube's size now (under its lock), then evict past the budget: first any
        other cube bigger than the whole budget, then, unless this cube is one, the least
        recently used until the rest fits. A side index not built yet is counted at an
        estimate, so the vectors' load makes room for what the first recall builds (and a
        cube too big with it counts as too big from its load)."""
        text = c.text
        if text is not None:
            nbytes = index.nbytes + text.nbytes
        elif self.analyzer is not None:
            nbytes = index.nbytes + _TEXT_BASE_BYTES + _TEXT_BYTES_PER_RECORD * index.count
        else:
            nbytes = index.nbytes
        with self._lock:
            if c.index is not index:  # evicted meanwhile: served to its callers, not kept
                return
            self._used += nbytes - c.nbytes
            c.nbytes = nbytes
            budget = self.memory_bytes
            if budget is None or self._used <= budget:
                return
            for pk, other in list(self._lru.items()):
                if other is not c and other.nbytes > budget:
                    self._evict(pk, other)
            if nbytes > budget:
                return
            for pk, other in list(self._lru.items()):
                if self._used <= budget:
                    break
                if other is not c:
                    self._evict(pk, other)

    def _evict(self, pk: int, c: _Cube) -> None:
        """Drop a loaded cube (under the manager's lock). Calls still searching it keep
        their reference; unsaved changes are not lost, the change log has them."""
        del self._lru[pk]
        self._used -= c.nbytes
        c.index, c.text, c.nbytes = None, None, 0
        c.checked_at = -math.inf
        self._evictions += 1
        if not c.users:
            del self._cubes[pk]

    def stats(self) -> IndexCacheStats:
        """What is in memory now and the counts since this manager started."""
        with self._lock:
            return IndexCacheStats(
                budget_bytes=self.memory_bytes,
                bytes=self._used,
                cubes=len(self._lru),
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                load_seconds=self._load_seconds,
            )

    # ---- persistence ----------------------------------------------------------------------------

    def _maybe_save(self, cube: CubeRow, c: _Cube, index: CubeIndex) -> None:
        if time.monotonic() - c.saved_at >= self.flush_seconds:
            self._save(cube, c, index)

    def _save(self, cube: CubeRow, c: _Cube, index: CubeIndex) -> None:
        if index.count >= self.file_min_vectors:
            write_index_file(self.path_for(cube), index)
        else:  # a file from when the cube was bigger would only be caught up from further back
            self.path_for(cube).unlink(missing_ok=True)
        index.dirty = False
        c.saved_at = time.monotonic()

    def flush(self) -> None:
        """Save every loaded index with unsaved changes."""
        with self._lock:
            loaded = list(self._lru.items())
        cubes = self._cube_rows([pk for pk, c in loaded if c.index is not None])
        for pk, c in loaded:
            with c.lock:
                index = c.index
                if index is not None and index.dirty and pk in cubes:
                    self._save(cubes[pk], c, index)

    def _cube_rows(self, pks: list[int]) -> dict[int, CubeRow]:
        if not pks:
            return {}
        with self.db.read() as s:
            return {c.pk: c for c in s.scalars(select(CubeRow).where(CubeRow.pk.in_(pks)))}

    def rebuild(self, cube: CubeRow) -> CubeIndex:
        c = self._enter(cube.pk)
        try:
            with c.lock:
                started = time.perf_counter()
                index, text = self._rebuild(cube, c, "requested")
                c.checked_at = time.monotonic()
                self._install(cube.pk, c, index, text, time.perf_counter() - started)
                self._settle(c, index)
                return index
        finally:
            self._leave(cube.pk, c, hit=None)

    def drop(self, cube: CubeRow) -> None:
        c = self._enter(cube.pk)
        try:
            with c.lock:
                with self._lock:
                    if c.index is not None:
                        del self._lru[cube.pk]
                        self._used -= c.nbytes
                    c.index, c.text, c.nbytes = None, None, 0
                    c.checked_at = -math.inf
                self.path_for(cube).unlink(missing_ok=True)
        finally:
            self._leave(cube.pk, c, hit=None)

    def loaded_counts(self) -> dict[int, int]:
        """Vectors per cube pk, for the indexes in memory now (loads nothing)."""
        with self._lock:
            loaded = [(pk, c.index) for pk, c in self._lru.items()]
        return {pk: index.count for pk, index in loaded if index is not None}

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
