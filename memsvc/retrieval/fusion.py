"""Fusing channel rankings into one score per record."""

from __future__ import annotations

from collections.abc import Mapping

from memsvc.retrieval.context import Ranked

__all__ = ["rrf", "weighted_sum"]


def rrf(rankings: Mapping[str, Ranked], weights: Mapping[str, float], k: int) -> dict[int, float]:
    """Weighted reciprocal-rank fusion: sum over channels of weight / (k + rank)."""
    out: dict[int, float] = {}
    for name, ranked in rankings.items():
        w = weights.get(name, 0.0)
        for rank, (pk, _) in enumerate(ranked, start=1):
            out[pk] = out.get(pk, 0.0) + w / (k + rank)
    return out


def weighted_sum(rankings: Mapping[str, Ranked], weights: Mapping[str, float]) -> dict[int, float]:
    """Sum of weight * channel score min-max scaled to [0, 1] within each channel."""
    out: dict[int, float] = {}
    for name, ranked in rankings.items():
        if not ranked:
            continue
        w = weights.get(name, 0.0)
        lo = min(s for _, s in ranked)
        hi = max(s for _, s in ranked)
        span = hi - lo
        for pk, s in ranked:
            out[pk] = out.get(pk, 0.0) + w * ((s - lo) / span if span > 0 else 1.0)
    return out
