"""Recency booster: among the fused candidates, newer events (relative to the query's
reference time) rank higher: exp(-age / half_life_days), turned into a reciprocal-rank bonus
by the pipeline."""

from __future__ import annotations

import math
from collections.abc import Mapping

from memsvc.retrieval.context import QueryContext, Ranked

HALF_LIFE_DAYS = 30.0


def recency(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    """(record, freshness in (0, 1]) for each candidate with an event time, freshest first;
    the pipeline adds weight / (rrf_k + rank)."""
    text = ctx.text
    if text is None or not scores:
        return []
    now = ctx.at.timestamp()
    fresh: dict[int, float] = {}
    for pk in ctx.candidates(scores):
        doc = text.docs.get(pk)
        if doc is None or doc.event_time is None:
            continue
        age_days = max(0.0, now - doc.event_time.timestamp()) / 86400.0
        fresh[pk] = math.exp(-age_days / HALF_LIFE_DAYS)
    return sorted(fresh.items(), key=lambda x: (-x[1], x[0]))
