"""Sentence channel: records by their nearest vector, the whole record's or one of its
sentence keys' (retrieval.sentence_keys), so a remark inside a long message is found though
the message as a whole is about something else."""

from __future__ import annotations

from collections.abc import Mapping

from memsvc.retrieval.context import QueryContext, Ranked


def sentence(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    # A record without keys stands by its own embedding: ranking keyed records alone would
    # favour long messages over every short one, whatever either says.
    best = dict(ctx.dense_hits)
    for pk, s in ctx.sentence_hits:
        if s > best.get(pk, -2.0):
            best[pk] = s
    return sorted(best.items(), key=lambda x: (-x[1], x[0]))[: ctx.n]
