"""Retention rescorer: how well each record at the head of the list is still held (Ebbinghaus
retention, `memsvc/retrieval/retention.py`), read from the records' own fields. The pipeline
scales each head score by (1 - w + w * R): a fading memory gives way to an equally relevant
fresh one, but relevance still leads (w is small in the presets)."""

from __future__ import annotations

from collections.abc import Mapping

from memsvc.retrieval.context import QueryContext, Ranked
from memsvc.retrieval.retention import ForgetPolicy
from memsvc.retrieval.retention import retention as held


def retention(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    """(record, R) for each record of `scores` still in the store, best held first."""
    if ctx.records is None or not scores:
        return []
    records = ctx.records(list(scores))
    policy = ctx.policy or ForgetPolicy()
    out = [(pk, held(rec, ctx.at, policy)) for pk, rec in records.items()]
    return sorted(out, key=lambda x: (-x[1], x[0]))
