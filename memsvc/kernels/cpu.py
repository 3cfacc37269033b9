"""CPU search paths: FAISS where it is fastest (binary Hamming scans, 8-bit scalar quantizer),
NumPy for rescoring a small candidate set; `CpuBackend` puts them behind the methods of
`backend.KernelBackend`.

Measured on the 2-core machine, one thread, 100k x 384: FAISS `knn_hamming` / IndexBinaryFlat
scans sign codes in about 0.5 ms per query; FAISS SQ8 (per-dimension trained ranges) scans in
about 1.3 ms; converting int8 codes to float for a BLAS product costs more than the float scan
itself (about 12 ms), so the CPU int8 path is FAISS's.
"""

from __future__ import annotations

import faiss
import numpy as np

__all__ = [
    "BinaryScanCPU",
    "CpuBackend",
    "Int8CodeScanCPU",
    "Int8ScanCPU",
    "hamming_knn",
    "int8_knn",
    "rescore_topk",
]


class BinaryScanCPU:
    """Hamming top-k over packed uint8 codes (FAISS IndexBinaryFlat)."""

    def __init__(self, codes: np.ndarray) -> None:
        codes = np.ascontiguousarray(np.atleast_2d(codes), dtype=np.uint8)
        self.nbytes_per_code = codes.shape[1]
        self.index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
        if len(codes):
            self.index.add(codes)

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def search(self, q_codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(int32 distances, int64 ids) [Q, min(k, N)], smallest first."""
        q = np.ascontiguousarray(np.atleast_2d(q_codes), dtype=np.uint8)
        k = min(k, self.count)
        if k <= 0:
            return np.empty((len(q), 0), np.int32), np.empty((len(q), 0), np.int64)
        d, i = self.index.search(q, k)
        return d.astype(np.int32), i.astype(np.int64)


class Int8CodeScanCPU:
    """Dot-product top-k over int8 codes kept as they are (exact int32 scores, `int8_knn`)."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = np.ascontiguousarray(np.atleast_2d(codes), dtype=np.int8)

    @property
    def count(self) -> int:
        return len(self.codes)

    def search(self, q8: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(int32 dot products, int64 ids) [Q, min(k, N)], largest first."""
        return int8_knn(q8, self.codes, k)


class Int8ScanCPU:
    """Inner-product top-k over 8-bit scalar-quantized vectors (FAISS SQ8: per-dimension
    ranges trained on the data), scored against the float query."""

    def __init__(self, vectors: np.ndarray) -> None:
        x = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        self.index = faiss.IndexScalarQuantizer(
            x.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        if len(x):
            self.index.train(x)
            self.index.add(x)

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, self.count)
        if k <= 0:
            return np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64)
        s, i = self.index.search(q, k)
        return s, i.astype(np.int64)


def rescore_topk(
    queries: np.ndarray, vectors: np.ndarray, candidates: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products with each query's candidate rows (-1 = none), best k first;
    equal scores keep the lower index. Short rows end in (-inf, -1)."""
    q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    cand = np.atleast_2d(np.asarray(candidates, dtype=np.int64))
    width = min(k, cand.shape[1])
    scores = np.full((len(q), width), -np.inf, np.float32)
    ids = np.full((len(q), width), -1, np.int64)
    for r in range(len(q)):
        c = np.unique(cand[r][cand[r] >= 0])
        if not len(c):
            continue
        s = vectors[c].astype(np.float32, copy=False) @ q[r]
        order = np.lexsort((c, -s))[:width]
        scores[r, : len(order)], ids[r, : len(order)] = s[order], c[order]
    return scores, ids


def hamming_knn(q_codes: np.ndarray, db_codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Stateless Hamming top-k over uint8 codes (FAISS knn_hamming): no index to maintain,
    so a caller can keep codes in its own growable arrays."""
    q = np.ascontiguousarray(np.atleast_2d(q_codes), dtype=np.uint8)
    db = np.ascontiguousarray(np.atleast_2d(db_codes), dtype=np.uint8)
    k = min(k, len(db))
    if k <= 0:
        return np.empty((len(q), 0), np.int32), np.empty((len(q), 0), np.int64)
    d, i = faiss.knn_hamming(q, db, k)
    return d.astype(np.int32), i.astype(np.int64)


def int8_knn(q8: np.ndarray, db8: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 dot-product top-k through float32 BLAS (exact: sums stay below 2^24 up to 1040
    dimensions), largest first, ties to the lower index."""
    q = np.atleast_2d(q8).astype(np.float32)
    scores = np.atleast_2d(db8).astype(np.float32) @ q.T  # [N, Q]
    k = min(k, scores.shape[0])
    out_s = np.empty((len(q), k), np.int32)
    out_i = np.empty((len(q), k), np.int64)
    for r in range(len(q)):
        col = scores[:, r]
        top = np.argpartition(-col, k - 1)[:k] if k < len(col) else np.arange(len(col))
        top = top[np.lexsort((top, -col[top]))]
        out_s[r], out_i[r] = col[top].astype(np.int32), top
    return out_s, out_i


class CpuBackend:
    """The CPU implementation of `backend.KernelBackend`: NumPy arrays in and out, nothing
    resident anywhere but host memory."""

    name = "cpu"

    def binary_scanner(self, codes: np.ndarray) -> BinaryScanCPU:
        return BinaryScanCPU(codes)

    def int8_scanner(self, codes: np.ndarray) -> Int8CodeScanCPU:
        return Int8CodeScanCPU(codes)

    def hamming_topk(
        self, q_codes: np.ndarray, db_codes: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        return hamming_knn(q_codes, db_codes, k)

    def int8_topk(self, q8: np.ndarray, db8: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return int8_knn(q8, db8, k)

    def rescore_topk(
        self, queries: np.ndarray, vectors: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        return rescore_topk(queries, vectors, candidates, k)

    def two_stage_topk(
        self,
        q_codes: np.ndarray,
        queries: np.ndarray,
        db_codes: np.ndarray,
        vectors: np.ndarray,
        k: int,
        *,
        candidates: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        q = np.atleast_2d(q_codes)
        n = len(db_codes)
        if candidates >= n:  # a small table: every row is a candidate, no scan
            rows = np.tile(np.arange(n, dtype=np.int64), (len(q), 1))
        elif db_codes.dtype == np.uint8:
            rows = hamming_knn(q, db_codes, candidates)[1]
        else:
            rows = int8_knn(q, db_codes, candidates)[1]
        return rescore_topk(queries, vectors, rows, k)

    def resident_table(self) -> None:
        """No device: tables stay on the host."""
        return None
