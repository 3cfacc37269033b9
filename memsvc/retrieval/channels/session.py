"""Session booster: the turn after a strong hit that asks a question is likely its answer.

"How did the kids handle the accident?" matches the question; the reply "They were scared
but we reassured them" carries the evidence and shares few words with it. The next record in
the same session gets `weight` times the asking hit's fused score (measured on LoCoMo dev:
evidence recall@10 0.62 -> 0.68 with weight 0.5).

An assistant's question passes nothing on: its closing "Would you like more ideas?" is
courtesy, and the user's next turn is a new request, not its answer (LongMemEval dev, turn
level: recall_any@1 0.526 -> 0.590; LoCoMo, two people talking, has no assistant turns).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from memsvc.retrieval.context import QueryContext, Ranked

PARENTS = 30  # how many of the best fused hits may pass a boost on


def session(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    """(answer, the fused score of the hit asking before it): the pipeline adds `weight`
    times it."""
    text = ctx.text
    if text is None:
        return []
    pairs: list[tuple[int, int]] = []  # (asking hit, the record after it)
    for pk in sorted(scores, key=lambda p: -scores[p])[:PARENTS]:
        doc = text.docs.get(pk)
        if doc is None or not doc.asks or doc.role == "assistant":
            continue
        nxt = text.next_in_session(pk)
        if nxt is not None:
            pairs.append((pk, nxt))
    if pairs and ctx.allowed is not None:  # the answer must pass the filters too
        ok = np.isin(np.fromiter((n for _, n in pairs), np.int64, len(pairs)), ctx.allowed)
        pairs = [p for p, keep in zip(pairs, ok, strict=True) if keep]
    signal: dict[int, float] = {}
    for pk, nxt in pairs:
        signal[nxt] = signal.get(nxt, 0.0) + scores[pk]
    return sorted(signal.items(), key=lambda x: (-x[1], x[0]))
