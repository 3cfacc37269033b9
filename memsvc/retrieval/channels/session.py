"""Session booster: the turn after a strong hit that asks a question is likely its answer.

"How did the kids handle the accident?" matches the question; the reply "They were scared
but we reassured them" carries the evidence and shares few words with it. The next record in
the same session gets `weight` times the asking hit's fused score (measured on LoCoMo dev:
evidence recall@10 0.62 -> 0.68 with weight 0.5).
"""

from __future__ import annotations

import numpy as np

from memsvc.retrieval.context import QueryContext

PARENTS = 30  # how many of the best fused hits may pass a boost on


def session(ctx: QueryContext, fused: dict[int, float], weight: float) -> dict[int, float]:
    """Bonus per record (added to its fused score)."""
    text = ctx.text
    if text is None or weight <= 0:
        return {}
    pairs: list[tuple[int, int]] = []  # (asking hit, the record after it)
    for pk in sorted(fused, key=lambda p: -fused[p])[:PARENTS]:
        doc = text.docs.get(pk)
        if doc is None or not doc.asks:
            continue
        nxt = text.next_in_session(pk)
        if nxt is not None:
            pairs.append((pk, nxt))
    if pairs and ctx.allowed is not None:  # the answer must pass the filters too
        ok = np.isin(np.fromiter((n for _, n in pairs), np.int64, len(pairs)), ctx.allowed)
        pairs = [p for p, keep in zip(pairs, ok, strict=True) if keep]
    bonus: dict[int, float] = {}
    for pk, nxt in pairs:
        bonus[nxt] = bonus.get(nxt, 0.0) + weight * fused[pk]
    return bonus
