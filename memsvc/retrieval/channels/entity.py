"""Entity channel: the records that mention (or were said by) an entity the query names, and
their neighbours one more hop away through a rarer co-mentioned entity.

1 hop: records linked to a query entity, ranked by cosine plus 0.1 per query entity they
link. 2 hops: entities co-mentioned in the best 1-hop records and rarer than either a few
records or 2% of the cube pull their own records in, ranked by cosine alone (below 1-hop
records of equal cosine). "Where does Alice's sister live?" reaches "Beth lives in Oslo"
through "Alice's sister is Beth".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from memsvc.retrieval.context import QueryContext, Ranked
from memsvc.retrieval.entities import query_names

HOP_SEEDS = 20  # best 1-hop records whose other entities are followed


def entity(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    text = ctx.text
    if text is None:
        return []
    mentioned = query_names(ctx.query, lambda n: bool(text.resolve(n)))
    if not mentioned:
        return []
    names: set[str] = set()
    links: dict[int, int] = {}
    for said in mentioned:
        linked: set[int] = set()
        for name in text.resolve(said):
            names.add(name)
            linked |= text.holders(name)
        for pk in linked:
            links[pk] = links.get(pk, 0) + 1
    one = dict(ctx.dense_among(np.fromiter(links, np.int64, len(links)), max(ctx.n, HOP_SEEDS)))
    scored = {pk: s + 0.1 * links[pk] for pk, s in one.items()}
    rare = max(3, int(0.02 * text.count))
    seeds = sorted(one, key=lambda p: -one[p])[:HOP_SEEDS]
    second: set[int] = set()
    for pk in seeds:
        doc = text.docs.get(pk)
        if doc is None:
            continue
        for other in doc.entities:
            if other not in names and text.df(other) <= rare:
                second |= text.holders(other)
    second -= set(scored)
    if second:
        for pk, s in ctx.dense_among(np.fromiter(second, np.int64, len(second)), ctx.n):
            scored[pk] = s
    return sorted(scored.items(), key=lambda x: (-x[1], x[0]))[: ctx.n]
