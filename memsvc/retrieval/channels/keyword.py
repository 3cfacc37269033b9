"""Keyword channel: BM25 over stemmed words (speaker included), for rare names and exact
terms that an embedding blurs."""

from __future__ import annotations

import numpy as np

from memsvc.retrieval.context import QueryContext, Ranked


def keyword(ctx: QueryContext) -> Ranked:
    if ctx.text is None:
        return []
    found = ctx.text.bm25(ctx.query, ctx.n, allowed=ctx.allowed)
    missing = [p for p, _ in found if p not in ctx.pool]
    if missing:  # their cosine, so other channels can rank within keyword finds too
        ctx.pool.update(ctx.dense_among(np.asarray(missing, np.int64), len(missing)))
    return found
