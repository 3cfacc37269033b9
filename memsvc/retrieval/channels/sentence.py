"""Sentence channel: records by their nearest vector, the whole record's or one of its
sentence keys' (retrieval.sentence_keys), so a remark inside a long message is found though
the message as a whole is about something else.

It runs for questions in the first person only ("How many siblings do I have?"): keys come
from what a person said at length, and a question about the asker's own life is what their
asides answer. A question about named people matches a key framed "Caroline (date): ..."
mostly by the name, and lifts that speaker's long messages whoever the answer is from
(LoCoMo dev, adversarial questions: recall@10 83.5 -> 75.7 with the channel at 0.5 on every
question)."""

from __future__ import annotations

from collections.abc import Mapping

from memsvc.retrieval.channels.own import FIRST_PERSON
from memsvc.retrieval.context import QueryContext, Ranked


def sentence(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    if not FIRST_PERSON.search(ctx.query):
        return []
    # A record without keys stands by its own embedding: ranking keyed records alone would
    # favour long messages over every short one, whatever either says.
    best = dict(ctx.dense_hits)
    for pk, s in ctx.sentence_hits:
        if s > best.get(pk, -2.0):
            best[pk] = s
    return sorted(best.items(), key=lambda x: (-x[1], x[0]))[: ctx.n]
