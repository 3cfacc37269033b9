"""Recall over one cube: channel search, filtering, ranking and per-channel explanations.

Filters that only exclude a few records (the default: active and valid now) are applied
after the vector search on an over-fetched list, widening it until `k` survivors are found;
explicit filters are pushed into the search as an id selector, so a selective filter cannot
starve the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Row
from sqlalchemy.orm import Session

from retrieval.dense import dense_search
from store import repository as repo
from store.indexes import IndexManager
from store.orm import CubeRow, RecordRow

__all__ = ["Candidate", "recall"]


@dataclass
class Candidate:
    row: RecordRow | Row[Any]  # a record's fields, as `RecordRow` names them
    score: float
    explain: dict[str, dict[str, float | int]] = field(default_factory=dict)


def recall(
    s: Session,
    indexes: IndexManager,
    cube: CubeRow,
    query_vec: np.ndarray,
    *,
    k: int,
    rq: repo.RecordQuery,
) -> list[Candidate]:
    """Ranked candidates, read through `s` so the caller's cube lookup, the index catch-up,
    filters and records share one snapshot."""
    index = indexes.get(cube, session=s, fresh=False)
    if index.count == 0:
        return []
    selective = bool(
        rq.user_id
        or rq.agent_id
        or rq.session_id
        or rq.kinds
        or rq.tiers
        or rq.tags
        or rq.since
        or rq.until
        or rq.metadata
    )
    allowed = None
    if selective:
        allowed = repo.matching_pks(s, cube.pk, rq)
        if len(allowed) == 0:
            return []
    # The index holds only active records, so the default conditions (validity at `at`)
    # rarely exclude any: a small margin almost always suffices, and the loop widens.
    fetch = k if selective else min(index.count, k + 5)
    while True:
        ranked = dense_search(index, query_vec, fetch, allowed=allowed)
        rows = repo.record_fields_by_pks(s, [pk for pk, _ in ranked])
        out: list[Candidate] = []
        for pk, score in ranked:
            row = rows.get(pk)
            if row is None or row.cube_pk != cube.pk or not rq.matches(row):
                continue  # deleted or changed since the search; never return it
            rank = len(out) + 1
            out.append(Candidate(row, score, {"dense": {"rank": rank, "score": score}}))
            if len(out) == k:
                return out
        exhausted = len(ranked) < fetch or fetch >= index.count
        if exhausted:
            return out
        fetch = min(index.count, fetch * 4)
