"""Plain NumPy references for every search, used only by tests: slow, obvious, exact.

Tie order (all searches): equal scores keep the lower database index first.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hamming_distances", "hamming_topk", "int8_topk", "rescore_topk"]


def hamming_distances(q_words: np.ndarray, db_words: np.ndarray) -> np.ndarray:
    """int32 [Q, N] Hamming distances between int32 word codes."""
    q = np.ascontiguousarray(np.atleast_2d(q_words)).view(np.uint8)
    d = np.ascontiguousarray(np.atleast_2d(db_words)).view(np.uint8)
    x = np.bitwise_xor(q[:, None, :], d[None, :, :])
    return np.unpackbits(x, axis=2).sum(axis=2).astype(np.int32)


def _order(scores: np.ndarray, k: int, *, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    n = scores.shape[1]
    k = min(k, n)
    ids = np.arange(n)
    out_s, out_i = [], []
    for row in scores:
        key = -row if largest else row
        order = np.lexsort((ids, key))[:k]  # by score, then by index
        out_s.append(row[order])
        out_i.append(order)
    dtype = scores.dtype
    return (
        np.asarray(out_s, dtype=dtype).reshape(len(scores), k),
        np.asarray(out_i, dtype=np.int64).reshape(len(scores), k),
    )


def hamming_topk(
    q_words: np.ndarray, db_words: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(distances, ids) [Q, min(k, N)], smallest first."""
    return _order(hamming_distances(q_words, db_words), k, largest=False)


def int8_topk(q8: np.ndarray, db8: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(int32 scores, ids) [Q, min(k, N)], largest dot product first."""
    scores = np.atleast_2d(q8).astype(np.int32) @ np.atleast_2d(db8).astype(np.int32).T
    return _order(scores.astype(np.int32), k, largest=True)


def rescore_topk(
    queries: np.ndarray, db: np.ndarray, candidates: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products of each query with its candidate rows (-1 = none), top k."""
    queries = np.atleast_2d(queries).astype(np.float64)
    out_s, out_i = [], []
    for q, cand in zip(queries, np.atleast_2d(candidates), strict=True):
        cand = np.unique(cand[cand >= 0])  # sorted: ties keep the lower index
        s = db[cand].astype(np.float64) @ q
        order = np.lexsort((cand, -s))[:k]
        out_s.append(s[order].astype(np.float32))
        out_i.append(cand[order])
    width = min(k, max((len(x) for x in out_i), default=0))
    S = np.full((len(queries), width), -np.inf, np.float32)
    ids = np.full((len(queries), width), -1, np.int64)
    for r, (s, i) in enumerate(zip(out_s, out_i, strict=True)):
        S[r, : len(s)], ids[r, : len(i)] = s[:width], i[:width]
    return S, ids
