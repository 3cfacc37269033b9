"""Dense channel: nearest records by cosine, through the cube's (two-stage) vector index."""

from __future__ import annotations

from collections.abc import Mapping

from memsvc.retrieval.context import QueryContext, Ranked


def dense(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    return list(ctx.dense_hits)
