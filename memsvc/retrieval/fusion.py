"""Fusing channel rankings into one score per record, and folding boosters and rescorers in.

Pure functions over ranked lists and score maps: `FUSIONS` fuses the generators, `FOLDS`
turns a booster's signal into a bonus per record, `RESCORES` re-weighs the head of the list
by a rescorer's signal. The channel registry (`memsvc/retrieval/channels/`) names which fold
each channel takes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from memsvc.retrieval.context import Ranked

__all__ = ["FOLDS", "FUSIONS", "RESCORES", "rrf", "weighted_sum"]


def rrf(rankings: Mapping[str, Ranked], weights: Mapping[str, float], k: int) -> dict[int, float]:
    """Weighted reciprocal-rank fusion: sum over channels of weight / (k + rank)."""
    out: dict[int, float] = {}
    for name, ranked in rankings.items():
        w = weights.get(name, 0.0)
        for rank, (pk, _) in enumerate(ranked, start=1):
            out[pk] = out.get(pk, 0.0) + w / (k + rank)
    return out


def weighted_sum(
    rankings: Mapping[str, Ranked], weights: Mapping[str, float], depth: int | None = None
) -> dict[int, float]:
    """Sum of weight * channel score min-max scaled within each channel, the minimum taken
    at `depth` (a score below it counts 0).

    Scaling at a fixed depth, not at the end of the list, keeps a hit's fused score the same
    however many candidates were asked for: without it a recall of k = 50 (whose lists run
    deeper) ranked its first ten differently from a recall of k = 10, and the eval runner's
    deep rankings were not what an agent's k = 10 gets."""
    out: dict[int, float] = {}
    for name, ranked in rankings.items():
        if not ranked:
            continue
        w = weights.get(name, 0.0)
        hi = max(s for _, s in ranked)
        if depth is not None and len(ranked) > depth:
            lo = sorted((s for _, s in ranked), reverse=True)[depth - 1]
        else:
            lo = min(s for _, s in ranked)
        span = hi - lo
        for pk, s in ranked:
            scaled = max(s - lo, 0.0) / span if span > 0 else float(s >= hi)
            out[pk] = out.get(pk, 0.0) + w * scaled
    return out


Fusion = Callable[[Mapping[str, Ranked], Mapping[str, float], int, int], dict[int, float]]
FUSIONS: Mapping[str, Fusion] = {
    "rrf": lambda rankings, weights, rrf_k, depth: rrf(rankings, weights, rrf_k),
    "weighted": lambda rankings, weights, rrf_k, depth: weighted_sum(rankings, weights, depth),
}


# ---- boosters: (signal, scores so far, weight, rrf_k) -> bonus per record ------------------------


def add(
    signal: Mapping[int, float], scores: Mapping[int, float], weight: float, rrf_k: int
) -> dict[int, float]:
    """weight * signal (session: a share of the asking hit's score)."""
    return {pk: weight * s for pk, s in signal.items()}


def scale(
    signal: Mapping[int, float], scores: Mapping[int, float], weight: float, rrf_k: int
) -> dict[int, float]:
    """weight * signal * score, for the records scored so far (speaker)."""
    return {pk: weight * signal[pk] * s for pk, s in scores.items() if pk in signal}


def by_rank(
    signal: Mapping[int, float], scores: Mapping[int, float], weight: float, rrf_k: int
) -> dict[int, float]:
    """weight / (rrf_k + rank), ranking the records scored so far by signal (recency)."""
    mine = {pk: signal[pk] for pk in scores if pk in signal}
    order = sorted(mine, key=lambda p: (-mine[p], p))
    return {pk: weight / (rrf_k + rank) for rank, pk in enumerate(order, start=1)}


Fold = Callable[[Mapping[int, float], Mapping[int, float], float, int], dict[int, float]]
FOLDS: Mapping[str, Fold] = {"add": add, "scale": scale, "rank": by_rank}


# ---- rescorers: (order, head length, signal, weight) -> (new order, signal held per record) ----


def retain(
    order: Ranked, head: int, signal: Mapping[int, float], weight: float
) -> tuple[Ranked, dict[int, float]]:
    """Scale the head's scores by (1 - w + w * signal) (a record without one keeps 1) and
    re-sort it; the rest of the list follows unchanged."""
    w = min(max(weight, 0.0), 1.0)
    held: dict[int, float] = {}
    rescored = []
    for pk, score in order[:head]:
        r = signal.get(pk, 1.0)
        held[pk] = r
        f = 1.0 - w + w * r
        rescored.append((pk, score * f if score >= 0 else score / max(f, 1e-6)))
    rescored.sort(key=lambda x: (-x[1], x[0]))
    return rescored + order[head:], held


Rescore = Callable[[Ranked, int, Mapping[int, float], float], tuple[Ranked, dict[int, float]]]
RESCORES: Mapping[str, Rescore] = {"retain": retain}
