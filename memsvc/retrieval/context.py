"""What every channel sees of one query: read-only inputs, the same for every channel.

Channels share no mutable state. What several of them reuse (the dense search, the keyword
search, the candidate pool built from both) is computed on first use and remembered on the
context: a pure function of its inputs, so the order channels run in changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from types import MappingProxyType

import numpy as np

from memsvc.retrieval.retention import ForgetPolicy
from memsvc.retrieval.source import VectorSearch
from memsvc.store.data import RecordData
from memsvc.store.text_index import CubeTextIndex

__all__ = ["EXACT_SUBSET_LIMIT", "POOL_CHANNELS", "QueryContext", "Ranked"]

Ranked = list[tuple[int, float]]  # (record pk, channel score), best first

# Exact scoring of a record subset gathers its vectors: above this size a subset is ranked
# within the candidate pool (the dense and keyword channels' finds) instead.
EXACT_SUBSET_LIMIT = 4096
# The channels whose finds make the candidate pool, when the recipe runs them.
POOL_CHANNELS = ("dense", "keyword")


@dataclass(frozen=True, eq=False)
class QueryContext:
    """One query's inputs; channels read them and write nothing (the arrays included: they
    go to FAISS and the kernels as they are)."""

    query: str
    qvec: np.ndarray | None  # None when the recipe needs no vector (`Recipe.needs_vector`)
    at: datetime
    index: VectorSearch
    text: CubeTextIndex | None
    allowed: np.ndarray | None  # explicit filters, applied before ranking; None: all
    n: int  # candidates each generator returns
    scan: int | None = None  # codes the dense scan rescores (None: the index's oversample)
    pool_from: frozenset[str] = frozenset(POOL_CHANNELS)  # the recipe's pool channels
    rrf_k: int = 20
    policy: ForgetPolicy | None = None
    records: Callable[[Sequence[int]], Mapping[int, RecordData]] | None = None

    def restrict(self, pks: np.ndarray) -> np.ndarray:
        return pks if self.allowed is None else np.intersect1d(pks, self.allowed)

    # ---- shared reads, computed once -------------------------------------------------------------

    @cached_property
    def dense_hits(self) -> tuple[tuple[int, float], ...]:
        """The n nearest records by cosine (through the two-stage scan)."""
        return self._nearest(self.index.search)

    @cached_property
    def sentence_hits(self) -> tuple[tuple[int, float], ...]:
        """The n records whose best sentence key is nearest by cosine."""
        return self._nearest(self.index.search_keys)

    def _nearest(
        self, search: Callable[..., tuple[np.ndarray, np.ndarray]]
    ) -> tuple[tuple[int, float], ...]:
        assert self.qvec is not None, "a cosine search needs the query vector"
        pks, scores = search(self.qvec, self.n, allowed=self.allowed, candidates=self.scan)
        return tuple((int(p), float(s)) for p, s in zip(pks, scores, strict=True))

    @cached_property
    def keyword_hits(self) -> tuple[tuple[int, float], ...]:
        """The n best records by BM25 (none without a side index)."""
        if self.text is None:
            return ()
        return tuple(self.text.bm25(self.query, self.n, allowed=self.allowed))

    @cached_property
    def pool(self) -> Mapping[int, float]:
        """Cosine of every record the recipe's dense and keyword channels find (a keyword find
        scored exactly when there are few of them), so other channels can rank within it."""
        pool: dict[int, float] = {}
        if "dense" in self.pool_from:
            pool.update(self.dense_hits)
        if "keyword" in self.pool_from:
            missing = [p for p, _ in self.keyword_hits if p not in pool]
            if missing:
                found = self.restrict(np.asarray(missing, np.int64))
                if 0 < len(found) <= EXACT_SUBSET_LIMIT:
                    pool.update(self._exact(found, len(missing)))
        return MappingProxyType(pool)

    def _exact(self, pks: np.ndarray, n: int) -> Ranked:
        assert self.qvec is not None, "ranking by cosine needs the query vector"
        found, scores = self.index.search(self.qvec, n, allowed=pks)
        return [(int(p), float(s)) for p, s in zip(found, scores, strict=True)]

    def candidates(self, scores: Mapping[int, float]) -> list[int]:
        """The records a booster scores: those of `scores`, and the turn after each one that
        asks (which the session booster may bring in), so that every booster reads the same
        fused scores and still covers every record the boosts end up on."""
        out = list(scores)
        text = self.text
        if text is None:
            return out
        seen = set(out)
        for pk in scores:
            doc = text.docs.get(pk)
            if doc is None or not doc.asks:
                continue
            nxt = text.next_in_session(pk)
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                out.append(nxt)
        return out

    def dense_among(self, pks: np.ndarray, n: int) -> Ranked:
        """Records of `pks` ranked by cosine to the query: exactly when the set is small,
        else within the candidate pool (the dense and keyword channels' finds)."""
        pks = self.restrict(np.asarray(pks, dtype=np.int64))
        if len(pks) == 0:
            return []
        if len(pks) <= EXACT_SUBSET_LIMIT:
            return self._exact(pks, n)
        pool = self.pool
        keys = np.fromiter(pool, np.int64, len(pool))
        inside = [(int(p), pool[int(p)]) for p in keys[np.isin(keys, pks)]]
        return sorted(inside, key=lambda x: (-x[1], x[0]))[:n]
