"""Keyword channel: BM25 over stemmed words (speaker included), for rare names and exact
terms that an embedding blurs. (Its finds also join the candidate pool other channels rank
within, with their cosine: `QueryContext.pool`.)"""

from __future__ import annotations

from collections.abc import Mapping

from memsvc.retrieval.context import QueryContext, Ranked


def keyword(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    return list(ctx.keyword_hits)
