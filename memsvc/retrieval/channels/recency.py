"""Recency booster: among the fused candidates, newer events (relative to the query's
reference time) rank higher: exp(-age / half_life_days) as a reciprocal-rank bonus."""

from __future__ import annotations

import math

from memsvc.retrieval.context import QueryContext

HALF_LIFE_DAYS = 30.0


def recency(
    ctx: QueryContext, fused: dict[int, float], weight: float, *, rrf_k: int
) -> dict[int, float]:
    text = ctx.text
    if text is None or weight <= 0 or not fused:
        return {}
    now = ctx.at.timestamp()
    fresh: dict[int, float] = {}
    for pk in fused:
        doc = text.docs.get(pk)
        if doc is None or doc.event_time is None:
            continue
        age_days = max(0.0, now - doc.event_time.timestamp()) / 86400.0
        fresh[pk] = math.exp(-age_days / HALF_LIFE_DAYS)
    order = sorted(fresh, key=lambda p: (-fresh[p], p))
    return {pk: weight / (rrf_k + rank) for rank, pk in enumerate(order, start=1)}
