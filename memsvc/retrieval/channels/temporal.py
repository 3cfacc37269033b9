"""Temporal channel: time in the question decides which records count.

A time the question names ("in May 2023", "last week", relative to the query's reference
time `at`) keeps the records whose time overlaps it: the time their own words name
("yesterday" said on 8 May is 7 May) or else their event day. A "when" question with no
time of its own keeps the records whose words name a time. Either way the kept records are
ranked by cosine; other questions get nothing from this channel.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from memsvc.retrieval.context import QueryContext, Ranked
from memsvc.retrieval.timeexpr import asks_when, find_times


def temporal(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    if ctx.text is None:
        return []
    spans = find_times(ctx.query, ctx.at)
    if spans:
        parts = [ctx.text.in_time(s.start.timestamp(), s.end.timestamp()) for s in spans]
        pks = np.unique(np.concatenate(parts))
    elif asks_when(ctx.query):
        pks = ctx.text.anchored()
    else:
        return []
    return ctx.dense_among(pks, ctx.n)
