"""Session vote booster: hits from one session back each other.

A long history answers a question in a few sessions; the turns of such a session each match
part of the question, while a stray turn elsewhere may match it better alone. Each of the
best fused hits gets the summed scores of the other strong hits of its own session (at most
VOTERS of them, so a long chatty session cannot outvote a focused one). What the question is
about, not a tuning: no speaker, date or wording rule.
"""

from __future__ import annotations

from collections.abc import Mapping

from memsvc.retrieval.context import QueryContext, Ranked

POOL = 50  # the best fused hits that vote and are voted for
VOTERS = 3  # strongest other hits of the same session that count


def vote(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    text = ctx.text
    if text is None or not scores:
        return []
    top = sorted(scores, key=lambda p: (-scores[p], p))[:POOL]
    by_session: dict[str, list[int]] = {}
    for pk in top:
        doc = text.docs.get(pk)
        if doc is not None and doc.session is not None:
            by_session.setdefault(doc.session, []).append(pk)
    signal: dict[int, float] = {}
    for members in by_session.values():
        if len(members) < 2:
            continue
        for pk in members:  # members are in score order: the strongest others first
            others = [scores[o] for o in members if o != pk][:VOTERS]
            signal[pk] = sum(others)
    return sorted(signal.items(), key=lambda x: (-x[1], x[0]))
