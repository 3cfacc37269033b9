"""One cube's vector index and its on-disk file.

The file holds a small JSON header (format, dim, embedding model, change-log sequence covered,
CRC of the payload) and a FAISS index. It is written to a temporary file, fsynced and renamed,
so a crash leaves either the old file or the new one, never a torn one; a file that fails its
checks is treated as missing and rebuilt from the database.
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

from memsvc.store.errors import StoreError
from memsvc.store.two_stage import MODES, CodeTable

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


_search_threads = 1


def set_search_threads(n: int) -> None:
    """FAISS's OpenMP threads for search. One is fastest for single queries (measured 0.5 ms
    vs 1.5 ms at 10k x 384), and idle-spinning OpenMP workers otherwise slow the next torch
    query embedding from 8 ms to 14 ms on a 2-core machine. OpenMP keeps this setting per
    OS thread, so every search applies it in the thread that runs it."""
    global _search_threads
    _search_threads = max(1, n)


class IndexFileError(StoreError):
    """The index file is missing, torn, corrupt or built for another model."""


@dataclass
class IndexHeader:
    dim: int
    model: str
    seq: int
    count: int


class CubeIndex:
    """Inner-product search over one cube's active record vectors (ids = record pks).

    `exact` mode keeps a FAISS flat index. A two-stage `mode` ("int8", "binary+rescore") keeps
    a code table instead (codes for the scan plus the float vectors for rescoring, one copy);
    filtered searches (an `allowed` set) are exact in both."""

    def __init__(self, dim: int, model: str, *, seq: int = 0) -> None:
        self.dim = dim
        self.model = model
        self.seq = seq
        self.dirty = False
        self.lock = threading.Lock()
        self._index: faiss.IndexIDMap2 | None = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        # remove_ids rewrites the whole flat array, so only ids actually held are removed.
        self._ids: set[int] = set()
        self.mode = "exact"
        self._table: CodeTable | None = None

    def set_mode(self, mode: str, *, oversample: int = 20) -> None:
        """Switch the search mode; a two-stage table is built from the vectors held."""
        if mode not in MODES:
            raise ValueError(f"unknown search mode {mode!r}; choose from {', '.join(MODES)}")
        with self.lock:
            pks, vecs = self._held()
            self.mode = mode
            if mode == "exact":
                self._table = None
                self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
                if len(pks):
                    self._index.add_with_ids(vecs, pks)
                self._ids = {int(p) for p in pks}
                return
            table = CodeTable(self.dim, mode, oversample=oversample)
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
        idx = cls(int(header["dim"]), str(header["model"]), seq=int(header["seq"]))
        if header.get("kind", "faiss") == "vectors":  # written in a two-stage mode
            with np.load(io.BytesIO(payload)) as arrays:
                pks, vecs = arrays["pks"], arrays["vecs"]
            if len(pks) != header["count"] or vecs.shape != (len(pks), idx.dim):
                raise IndexFileError("index file disagrees with its header")
            if len(pks):
                assert idx._index is not None
                idx._index.add_with_ids(np.ascontiguousarray(vecs, np.float32), pks)
                idx._ids = {int(p) for p in pks}
            return idx
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
