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
from typing import Any

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
    "KEY_BASE",
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
# A record's sentence keys are held under ids of their own: KEY_BASE + pk * KEY_SLOTS + i.
KEY_BASE = 1 << 56
KEY_SLOTS = 64  # more than any record has (retrieval.sentence_keys.MAX_KEYS)
KEY_FANOUT = 3  # a key search reads this many keys a wanted record, then folds them


def key_owners(ids: np.ndarray) -> np.ndarray:
    """The record pk each key id stands for."""
    return (np.asarray(ids, np.int64) - KEY_BASE) // KEY_SLOTS


def _key_ids(pk: int, n: int) -> np.ndarray:
    return KEY_BASE + pk * KEY_SLOTS + np.arange(n, dtype=np.int64)


def _count_keys(ids: np.ndarray) -> dict[int, int]:
    owners, counts = np.unique(key_owners(ids), return_counts=True)
    return dict(zip(owners.tolist(), counts.tolist(), strict=True))


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

    A record may also have sentence keys (`add_keys`): vectors that stand for it, held in a
    second index of the same spec and searched on their own (`search_keys`), so a search of
    the records is the same with or without them. `count` counts records, `keys` keys.

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
        self._keyidx: CubeIndex | None = None  # ids: KEY_BASE + pk * KEY_SLOTS + i
        self._nkeys: dict[int, int] = {}  # record pk -> keys held
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
            if self._keyidx is not None:
                self._keyidx.set_spec(spec)
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
    def keys(self) -> int:
        """Sentence keys held."""
        return 0 if self._keyidx is None else self._keyidx.count

    @property
    def nbytes(self) -> int:
        """Host bytes held (for the index budget): a two-stage table's arrays, or the flat
        index's vectors and ids plus the set of held ids (about 70 bytes an id); the keys'
        index likewise, and about 100 bytes a keyed record."""
        keys = 0 if self._keyidx is None else self._keyidx.nbytes + 100 * len(self._nkeys)
        if self._table is not None:
            return _OBJECT_BYTES + self._table.nbytes + keys
        return _OBJECT_BYTES + self.count * (4 * self.dim + 8) + 70 * len(self._ids) + keys

    def upsert(self, pks: np.ndarray, vectors: np.ndarray) -> None:
        if len(pks) == 0:
            return
        pks = np.ascontiguousarray(pks, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(pks), self.dim)
        with self.lock:
            self._drop_keys(pks)  # a changed record's keys are written anew (`add_keys`)
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
            self._drop_keys(pks)
            self._remove_held(pks)
            self.dirty = True

    def add_keys(self, owners: np.ndarray, vectors: np.ndarray) -> None:
        """Sentence keys of held records: `owners[i]` is the record pk vectors[i] stands for
        (the keys of a record not held are skipped: it is deleted or archived)."""
        if len(owners) == 0:
            return
        owners = np.asarray(owners, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(owners), self.dim)
        with self.lock:
            ids = np.empty(len(owners), np.int64)
            keep = np.zeros(len(owners), bool)
            for i, pk in enumerate(owners.tolist()):
                n = self._nkeys.get(pk, 0)
                if n < KEY_SLOTS and self._holds(pk):
                    ids[i], keep[i] = KEY_BASE + pk * KEY_SLOTS + n, True
                    self._nkeys[pk] = n + 1
            if not keep.any():
                return
            if self._keyidx is None:
                self._keyidx = CubeIndex(self.dim, self.model, spec=self.spec)
            self._keyidx.upsert(ids[keep], vectors[keep])
            self.dirty = True

    def _holds(self, pk: int) -> bool:
        if self._table is not None:
            return pk in self._table.row
        return pk in self._ids

    def _drop_keys(self, pks: np.ndarray) -> None:
        if not self._nkeys or self._keyidx is None:
            return
        found = [_key_ids(p, n) for p in pks.tolist() if (n := self._nkeys.pop(int(p), 0))]
        if found:
            self._keyidx.remove(np.concatenate(found))

    def search_keys(
        self,
        query: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k records by their best sentence key's inner product, as (pks, scores); only
        records with keys can be found. `allowed` and `candidates` as in `search`."""
        with self.lock:
            keyidx = self._keyidx
            if keyidx is None or not self._nkeys:
                return np.empty(0, np.int64), np.empty(0, np.float32)
            if allowed is not None:
                keyed = [
                    _key_ids(p, n)
                    for p in np.asarray(allowed, np.int64).tolist()
                    if (n := self._nkeys.get(p))
                ]
                if not keyed:
                    return np.empty(0, np.int64), np.empty(0, np.float32)
                allowed = np.concatenate(keyed)
        more = None if candidates is None else KEY_FANOUT * candidates
        ids, scores = keyidx.search(query, KEY_FANOUT * k, allowed=allowed, candidates=more)
        owners = key_owners(ids)  # best first: a record's first entry is its best key
        _, first = np.unique(owners, return_index=True)
        first = np.sort(first)[:k]
        return owners[first], scores[first]

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
            }
            if self._keyidx is not None and self._nkeys:
                keys = self._keyidx.to_bytes()  # a whole index file of its own, appended
                header["keys_bytes"] = len(keys)
                payload += keys
            header["crc32"] = zlib.crc32(payload)
        raw = json.dumps(header).encode()
        return MAGIC + struct.pack("<I", len(raw)) + raw + payload

    @classmethod
    def from_bytes(cls, data: bytes, *, keys: bool = True) -> CubeIndex:
        """The index a `to_bytes` wrote; `keys=False` for the keys' own index (which holds
        none of its own)."""
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
        keys_bytes = header.get("keys_bytes", 0)
        if not isinstance(keys_bytes, int) or not 0 <= keys_bytes <= len(payload):
            raise IndexFileError("index file disagrees with its header (keys)")
        if keys_bytes and not keys:
            raise IndexFileError("index file nests keys within keys")
        keyidx = None
        if keys_bytes:
            keyidx = cls.from_bytes(payload[len(payload) - keys_bytes :], keys=False)
            if keyidx.dim != dim:
                raise IndexFileError("index file disagrees with its header (keys)")
            payload = payload[: len(payload) - keys_bytes]
        idx = cls._from_payload(payload, header, kind, spec, dim, model, seq)
        if keyidx is not None:
            ids = keyidx._held()[0]
            if (ids < KEY_BASE).any():
                raise IndexFileError("index file holds keys of no record")
            idx._keyidx, idx._nkeys = keyidx, _count_keys(ids)
        return idx

    @classmethod
    def _from_payload(
        cls,
        payload: bytes,
        header: dict[str, Any],
        kind: str,
        spec: IndexSpec,
        dim: int,
        model: str,
        seq: int,
    ) -> CubeIndex:
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
