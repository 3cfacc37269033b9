"""One cube's vector index and its on-disk file.

The file holds a small JSON header (format, dim, embedding model, change-log sequence covered,
the index spec it was built with, CRC of the payload) and a payload: a FAISS index (`Flat`), or
the pks and float32 vectors of a two-stage table (whose codes are derived on load). It is
written to a temporary file, fsynced and renamed, so a crash leaves either the old file or the
new one, never a torn one; a file that fails its checks (a spec it cannot parse included) is
treated as missing and rebuilt from the database.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import ThreadpoolController

from memsvc.store.errors import StoreError
from memsvc.store.index_spec import (
    DEFAULT_OVERSAMPLE,
    IndexSpec,
    IndexSpecError,
    parse_index_spec,
)
from memsvc.store.two_stage import CodeTable

__all__ = [
    "CubeIndex",
    "IndexFileError",
    "read_index_file",
    "set_search_threads",
    "write_index_file",
]

log = logging.getLogger(__name__)
MAGIC = b"MEMSVCIX"
FORMAT = 1
_OBJECT_BYTES = 2048  # a cube index's fixed cost: its Python objects (`CubeIndex.nbytes`)


_search_threads = 1


def set_search_threads(n: int) -> None:
    """FAISS's OpenMP threads for search, and numpy's BLAS threads. One is fastest for single
    queries (measured 0.5 ms vs 1.5 ms at 10k x 384), and idle-spinning OpenMP workers
    otherwise slow the next torch query embedding from 8 ms to 14 ms on a 2-core machine.
    OpenMP keeps this setting per OS thread, so every search applies it in the thread that
    runs it. numpy's BLAS runs the two-stage tables' small products (encoding a loaded
    cube's codes, rescoring): with its 2 threads beside the embedder's, encoding 20 rows
    took 28 ms instead of 1, which every cold cube's first recall paid."""
    global _search_threads
    _search_threads = max(1, n)
    numpy_blas = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    controller = ThreadpoolController()
    for lib in controller.select(user_api="blas").lib_controllers:
        if Path(lib.filepath).resolve().parent == numpy_blas:  # not FAISS's, not torch's
            lib.set_num_threads(_search_threads)


class IndexFileError(StoreError):
    """The index file is missing, torn, corrupt or built for another model."""


@dataclass
class IndexHeader:
    dim: int
    model: str
    seq: int
    count: int


class CubeIndex:
    """Inner-product search over one cube's active record vectors (ids = record pks), built
    from an `IndexSpec` (default `Flat`).

    `Flat` keeps a FAISS flat index. A two-stage spec (`SQ8...`, `RBin...`) keeps a code table
    instead (codes for the scan plus the float vectors for rescoring, one copy); filtered
    searches (an `allowed` set) are exact in both."""

    def __init__(
        self, dim: int, model: str, *, seq: int = 0, spec: IndexSpec | str = "Flat"
    ) -> None:
        self.dim = dim
        self.model = model
        self.seq = seq
        self.dirty = False
        self.lock = threading.Lock()
        self.spec = parse_index_spec(spec) if isinstance(spec, str) else spec
        self._index: faiss.IndexIDMap2 | None = None
        # remove_ids rewrites the whole flat array, so only ids actually held are removed.
        self._ids: set[int] = set()
        self._table: CodeTable | None = None
        self._build(np.empty(0, np.int64), np.empty((0, dim), np.float32))

    @property
    def mode(self) -> str:
        """The legacy name of the spec's encoding (exact, int8, binary+rescore)."""
        return self.spec.mode

    def set_spec(self, spec: IndexSpec | str) -> None:
        """Rebuild in another spec from the vectors held (nothing to do if it is the same);
        the file is then out of date (`dirty`) until saved again."""
        spec = parse_index_spec(spec) if isinstance(spec, str) else spec
        with self.lock:
            if spec == self.spec:
                return
            pks, vecs = self._held()
            self.spec = spec
            self._build(pks, vecs)
            self.dirty = True

    def set_mode(self, mode: str, *, oversample: int = DEFAULT_OVERSAMPLE) -> None:
        """`set_spec` by a legacy mode name (which takes `oversample`) or a spec string."""
        self.set_spec(parse_index_spec(mode, oversample=oversample))

    def _build(self, pks: np.ndarray, vecs: np.ndarray) -> None:
        """The structure `self.spec` names, holding (pks, vecs)."""
        if self._table is not None:
            self._table.close()
        if not self.spec.two_stage:
            self._table = None
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            if len(pks):
                self._index.add_with_ids(vecs, pks)
            self._ids = {int(p) for p in pks}
            return
        table = CodeTable(self.dim, self.spec)
        table.rebuild(pks, vecs)
        self._table = table
        self._index = None  # the table holds the only copy of the vectors
        self._ids = set()

    def _held(self) -> tuple[np.ndarray, np.ndarray]:
        """(pks, vectors) of every record held, copied."""
        if self._table is not None:
            pks, vecs = self._table.vectors()
            return pks.copy(), vecs.copy()
        assert self._index is not None
        n = int(self._index.ntotal)
        if not n:
            return np.empty(0, np.int64), np.empty((0, self.dim), np.float32)
        flat = faiss.downcast_index(self._index.index)
        vecs = faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim)
        return faiss.vector_to_array(self._index.id_map).copy(), np.array(vecs, np.float32)

    @property
    def count(self) -> int:
        if self._table is not None:
            return self._table.n
        assert self._index is not None
        return int(self._index.ntotal)

    @property
    def nbytes(self) -> int:
        """Host bytes held (for the index budget): a two-stage table's arrays, or the flat
        index's vectors and ids plus the set of held ids (about 70 bytes an id)."""
        if self._table is not None:
            return _OBJECT_BYTES + self._table.nbytes
        return _OBJECT_BYTES + self.count * (4 * self.dim + 8) + 70 * len(self._ids)

    def upsert(self, pks: np.ndarray, vectors: np.ndarray) -> None:
        if len(pks) == 0:
            return
        pks = np.ascontiguousarray(pks, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(pks), self.dim)
        with self.lock:
            if self._table is not None:
                self._table.upsert(pks, vectors)
            else:
                assert self._index is not None
                self._remove_held(pks)
                self._index.add_with_ids(vectors, pks)
                self._ids.update(int(p) for p in pks)
            self.dirty = True

    def remove(self, pks: np.ndarray) -> None:
        if len(pks) == 0:
            return
        with self.lock:
            self._remove_held(pks)
            self.dirty = True

    def _remove_held(self, pks: np.ndarray) -> None:
        if self._table is not None:
            self._table.remove(np.asarray(pks, dtype=np.int64))
            return
        held = [int(p) for p in pks if int(p) in self._ids]
        if held:
            assert self._index is not None
            self._index.remove_ids(np.asarray(held, dtype=np.int64))
            self._ids.difference_update(held)

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (pks, scores) by inner product; `allowed` restricts the candidates;
        `candidates` caps a two-stage scan's rescored set (the exact index ignores it)."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        with self.lock:
            k = min(k, self.count if allowed is None else min(self.count, len(allowed)))
            if k <= 0:
                return np.empty(0, np.int64), np.empty(0, np.float32)
            faiss.omp_set_num_threads(_search_threads)
            if self._table is not None:
                if allowed is None:
                    return self._table.search(q, k, candidates=candidates)
                return self._table.search_among(q, k, allowed)
            assert self._index is not None
            params = None
            if allowed is not None:
                sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
                params = faiss.SearchParameters(sel=sel)
            scores, pks = self._index.search(q, k, params=params)
        keep = pks[0] >= 0
        return pks[0][keep], scores[0][keep]

    def to_bytes(self) -> bytes:
        with self.lock:
            if self._table is not None:  # two-stage: the vectors (codes are derived)
                pks, vecs = self._table.vectors()
                buf = io.BytesIO()
                np.savez(buf, pks=pks, vecs=vecs)
                payload, kind = buf.getvalue(), "vectors"
            else:
                assert self._index is not None
                payload, kind = faiss.serialize_index(self._index).tobytes(), "faiss"
            header = {
                "format": FORMAT,
                "kind": kind,
                "spec": self.spec.describe(),
                "dim": self.dim,
                "model": self.model,
                "seq": self.seq,
                "count": self.count,
                "crc32": zlib.crc32(payload),
            }
        raw = json.dumps(header).encode()
        return MAGIC + struct.pack("<I", len(raw)) + raw + payload

    @classmethod
    def from_bytes(cls, data: bytes) -> CubeIndex:
        if len(data) < 12 or data[:8] != MAGIC:
            raise IndexFileError("not a memsvc index file")
        (hlen,) = struct.unpack("<I", data[8:12])
        try:
            header = json.loads(data[12 : 12 + hlen])
        except ValueError as exc:
            raise IndexFileError(f"unreadable index header: {exc}") from exc
        payload = data[12 + hlen :]
        if header.get("format") != FORMAT or zlib.crc32(payload) != header.get("crc32"):
            raise IndexFileError("index file is corrupt (format or checksum mismatch)")
        kind = header.get("kind", "faiss")
        try:  # files from before specs were saved: a FAISS payload is Flat
            spec = parse_index_spec(header.get("spec") or "Flat")
        except IndexSpecError as exc:
            raise IndexFileError(f"index file names an unknown spec: {exc}") from exc
        dim, model, seq = int(header["dim"]), str(header["model"]), int(header["seq"])
        if kind == "vectors":  # written by a two-stage table: its codes are rebuilt here
            with np.load(io.BytesIO(payload)) as arrays:
                pks, vecs = arrays["pks"], arrays["vecs"]
            if len(pks) != header["count"] or vecs.shape != (len(pks), dim):
                raise IndexFileError("index file disagrees with its header")
            idx = cls(dim, model, seq=seq)
            idx.spec = spec
            idx._build(np.asarray(pks, np.int64), np.ascontiguousarray(vecs, np.float32))
            return idx
        if spec.two_stage:
            raise IndexFileError("index file disagrees with its header (spec and payload)")
        idx = cls(dim, model, seq=seq)
        loaded = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        if loaded.ntotal != header["count"] or loaded.d != idx.dim:
            raise IndexFileError("index file disagrees with its header")
        idx._index = loaded
        idx._ids = set(faiss.vector_to_array(loaded.id_map).tolist())
        return idx


def write_index_file(path: Path, index: CubeIndex) -> None:
    """Atomically replace `path` with the index (tmp file, fsync, rename, fsync dir)."""
    data = index.to_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_index_file(path: Path) -> CubeIndex:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise IndexFileError(f"no index file at {path}") from exc
    except OSError as exc:
        raise IndexFileError(f"cannot read index file {path}: {exc}") from exc
    try:
        return CubeIndex.from_bytes(data)
    except IndexFileError:
        raise
    except Exception as exc:  # FAISS raises RuntimeError on a torn payload
        raise IndexFileError(f"index file {path} is corrupt: {exc}") from exc
