"""Speaker booster: a question that names a speaker is mostly answered by that speaker's own
words. On LoCoMo dev, 931 of the 968 evidence turns of questions naming one speaker were
said by that speaker, while dense and keyword hits often come from the other side of the
conversation ("Thanks Caroline, ..."). Records said by a named speaker gain `weight` times
their score."""

from __future__ import annotations

from collections.abc import Mapping

from memsvc.retrieval.context import QueryContext, Ranked
from memsvc.retrieval.entities import query_names


def speaker(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    """(record, 1.0) for each candidate said by a speaker the query names: the pipeline adds
    `weight` times the record's score."""
    text = ctx.text
    if text is None or not scores:
        return []
    named = set(query_names(ctx.query, text.is_speaker))
    if not named:
        return []
    out: Ranked = []
    for pk in ctx.candidates(scores):
        doc = text.docs.get(pk)
        if doc is not None and doc.speaker and doc.speaker.lower() in named:
            out.append((pk, 1.0))
    return out
