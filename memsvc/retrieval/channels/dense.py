"""Dense channel: nearest records by cosine, through the cube's (two-stage) vector index."""

from __future__ import annotations

from memsvc.retrieval.context import QueryContext, Ranked


def dense(ctx: QueryContext) -> Ranked:
    pks, scores = ctx.index.search(ctx.qvec, ctx.n, allowed=ctx.allowed, candidates=ctx.scan)
    out = [(int(p), float(s)) for p, s in zip(pks, scores, strict=True)]
    ctx.pool.update(out)
    return out
