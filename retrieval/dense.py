"""Dense channel: nearest records to the query embedding by inner product (cosine)."""

from __future__ import annotations

import numpy as np

from store.vector_index import CubeIndex

__all__ = ["dense_search"]


def dense_search(
    index: CubeIndex, query_vec: np.ndarray, k: int, *, allowed: np.ndarray | None = None
) -> list[tuple[int, float]]:
    """Ranked (record pk, cosine score) pairs, best first."""
    pks, scores = index.search(query_vec, k, allowed=allowed)
    return [(int(p), float(s)) for p, s in zip(pks, scores, strict=True)]
