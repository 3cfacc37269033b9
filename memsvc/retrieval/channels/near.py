"""Nearby-turn booster: what answers a question is often said a turn or two from what
matches it.

"What does Melanie think about Caroline's decision to adopt?" matches Melanie asking about
the adoption; her verdict ("You're doing something amazing ... an awesome mom!") comes two
turns later, after Caroline's reply, and names no adoption. Each of the best fused hits
passes its score, divided by the distance, to the turns up to REACH places before and after
it in its session; a turn near several hits keeps the largest. Measured on LoCoMo dev
(recall@10, categories 1-4): 81.1 -> 81.9 at weight 0.2; reach 1 gives 81.0, reach 3 81.8,
the 20 best hits as parents 81.9, weights 0.2-0.5 81.6-81.9.

Persons' turns only, as with `session`: an assistant's reply neither passes a lift on nor
takes one. Next to every user turn of a long assistant chat stands its reply, which restates
the request (LongMemEval dev, turn level: recall_all@5 0.737 -> 0.718 when replies took part,
0.737 without them).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from memsvc.retrieval.context import QueryContext, Ranked

PARENTS = 10  # how many of the best fused persons' turns pass a boost on
REACH = 2  # turns before and after


def near(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    text = ctx.text
    if text is None or not scores:
        return []
    docs = text.docs

    def said_by_a_person(pk: int) -> bool:
        doc = docs.get(pk)
        return doc is not None and doc.role != "assistant"

    best = sorted(scores, key=lambda p: (-scores[p], p))
    parents = [pk for pk in best if said_by_a_person(pk)][:PARENTS]
    signal: dict[int, float] = {}
    for pk in parents:
        for other, distance in text.around(pk, REACH):
            lift = scores[pk] / distance
            if lift > signal.get(other, 0.0) and said_by_a_person(other):
                signal[other] = lift
    if signal and ctx.allowed is not None:  # a neighbour must pass the filters too
        pks = np.fromiter(signal, np.int64, len(signal))
        signal = {int(p): signal[int(p)] for p in pks[np.isin(pks, ctx.allowed)]}
    return sorted(signal.items(), key=lambda x: (-x[1], x[0]))
