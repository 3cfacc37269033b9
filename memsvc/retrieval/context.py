"""What every channel sees of one query: its text, embedding, reference time and the cube."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from memsvc.store.text_index import CubeTextIndex
from memsvc.store.vector_index import CubeIndex

__all__ = ["QueryContext", "Ranked"]

Ranked = list[tuple[int, float]]  # (record pk, channel score), best first

# Exact scoring of a record subset gathers its vectors: above this size a subset is ranked
# within the candidates the other channels already found instead.
EXACT_SUBSET_LIMIT = 4096


@dataclass
class QueryContext:
    query: str
    qvec: np.ndarray
    at: datetime
    index: CubeIndex
    text: CubeTextIndex | None
    allowed: np.ndarray | None  # explicit filters, applied before ranking; None: all
    n: int  # candidates each channel returns
    scan: int | None = None  # codes the dense scan rescores (None: the index's oversample)
    pool: dict[int, float] = field(default_factory=dict)  # dense scores seen so far

    def restrict(self, pks: np.ndarray) -> np.ndarray:
        return pks if self.allowed is None else np.intersect1d(pks, self.allowed)

    def dense_among(self, pks: np.ndarray, n: int) -> Ranked:
        """Records of `pks` ranked by cosine to the query: exactly when the set is small,
        else within the candidate pool (the dense and keyword channels' finds)."""
        pks = self.restrict(np.asarray(pks, dtype=np.int64))
        if len(pks) == 0:
            return []
        if len(pks) <= EXACT_SUBSET_LIMIT:
            found, scores = self.index.search(self.qvec, n, allowed=pks)
            return [(int(p), float(s)) for p, s in zip(found, scores, strict=True)]
        keys = np.fromiter(self.pool, np.int64, len(self.pool))
        inside = [(int(p), self.pool[int(p)]) for p in keys[np.isin(keys, pks)]]
        return sorted(inside, key=lambda x: (-x[1], x[0]))[:n]
