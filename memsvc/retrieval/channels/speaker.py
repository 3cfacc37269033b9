"""Speaker booster: a question that names a speaker is mostly answered by that speaker's own
words. On LoCoMo dev, 931 of the 968 evidence turns of questions naming one speaker were
said by that speaker, while dense and keyword hits often come from the other side of the
conversation ("Thanks Caroline, ..."). Records said by a named speaker gain `weight` times
their fused score."""

from __future__ import annotations

from memsvc.retrieval.context import QueryContext
from memsvc.retrieval.entities import query_names


def speaker(ctx: QueryContext, fused: dict[int, float], weight: float) -> dict[int, float]:
    text = ctx.text
    if text is None or weight <= 0 or not fused:
        return {}
    named = set(query_names(ctx.query, text.is_speaker))
    if not named:
        return {}
    bonus: dict[int, float] = {}
    for pk, score in fused.items():
        doc = text.docs.get(pk)
        if doc is not None and doc.speaker and doc.speaker.lower() in named:
            bonus[pk] = weight * score
    return bonus
