"""Aside booster: a candidate one of whose sentences matches the query better than the whole
record does gains the difference (times its weight).

A remark made in passing ("By the way, I have three sisters" in a request for papers) is what
a question about it matches, while the record's own embedding says what the whole message is
about. The `sentence` generator finds such records anywhere; this booster only re-weighs the
candidates the other channels found, and lifts a record only by how much its best sentence
(retrieval.sentence_keys) beats its whole text, so records without keys, and long records
whose sentences all say what the whole says, keep their order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from memsvc.retrieval.context import EXACT_SUBSET_LIMIT, QueryContext, Ranked


def aside(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    """(record, best sentence's cosine minus the record's) where that is positive."""
    if ctx.qvec is None or not scores:
        return []
    pks = ctx.restrict(np.fromiter(ctx.candidates(scores), np.int64))[:EXACT_SUBSET_LIMIT]
    keyed, best = ctx.index.search_keys(ctx.qvec, len(pks), allowed=pks)
    if len(keyed) == 0:
        return []
    found, whole = ctx.index.search(ctx.qvec, len(keyed), allowed=keyed)
    own = dict(zip(found.tolist(), whole.tolist(), strict=True))
    out = [
        (pk, b - own[pk])
        for pk, b in zip(keyed.tolist(), best.tolist(), strict=True)
        if pk in own and b > own[pk]
    ]
    return sorted(out, key=lambda x: (-x[1], x[0]))
