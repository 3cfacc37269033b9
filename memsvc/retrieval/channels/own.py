"""Own-words booster: a question in the first person ("what did I...", "my ...") asks what
the user said, and an agent's long replies match its wording too.

In a user-assistant chat, the assistant's replies are many times longer than the user's
turns (LongMemEval: median 362 tokens against 42) and restate the topic of every question
the user asked ("here are some resources to learn video editing ..."), so they outscore the
user's own short statement ("I've been using Premiere Pro") on both dense and keyword
channels. Records the user said (role "user") gain `weight` times their score when the
query speaks in the first person. Where every record has one role (LoCoMo: two people, both
added as users) every candidate gains alike and the order is unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from memsvc.retrieval.context import QueryContext, Ranked

FIRST_PERSON = re.compile(r"\b(i|i'm|i've|i'd|i'll|me|my|mine|myself)\b", re.IGNORECASE)


def own(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    """(record, 1.0) for each candidate the user said, for a first-person query."""
    text = ctx.text
    if text is None or not scores or not FIRST_PERSON.search(ctx.query):
        return []
    out: Ranked = []
    for pk in ctx.candidates(scores):
        doc = text.docs.get(pk)
        if doc is not None and doc.role == "user":
            out.append((pk, 1.0))
    return out
