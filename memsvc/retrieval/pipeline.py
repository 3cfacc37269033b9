"""Recall over one cube: channels, fusion, boosters, filters and per-channel explanations.

Explicit filters (user, session, tags, kinds, time range, metadata) become an id set that
every channel searches within, so a selective filter cannot starve the result. The default
conditions (active, valid at `at`) exclude few records and are checked on the fused list,
which widens until `k` survivors are found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Row
from sqlalchemy.orm import Session

from memsvc.retrieval.channels import BOOSTERS, GENERATORS
from memsvc.retrieval.channels.recency import recency
from memsvc.retrieval.context import QueryContext, Ranked
from memsvc.retrieval.fusion import rrf, weighted_sum
from memsvc.retrieval.recipe import Recipe
from memsvc.retrieval.retention import ForgetPolicy, retention
from memsvc.store import repository as repo
from memsvc.store.indexes import IndexManager
from memsvc.store.orm import CubeRow, RecordRow

__all__ = ["Candidate", "recall"]


@dataclass
class Candidate:
    row: RecordRow | Row[Any]  # a record's fields, as `RecordRow` names them
    score: float
    explain: dict[str, dict[str, float | int]] = field(default_factory=dict)


def _selective(rq: repo.RecordQuery) -> bool:
    return bool(
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


def recall(
    s: Session,
    indexes: IndexManager,
    cube: CubeRow,
    query_vec: np.ndarray,
    *,
    k: int,
    rq: repo.RecordQuery,
    recipe: Recipe,
    query: str = "",
    at: datetime,
    policy: ForgetPolicy | None = None,
) -> list[Candidate]:
    """Ranked candidates, read through `s` so the cube lookup, the index catch-up, filters and
    records share one snapshot."""
    index = indexes.get(cube, session=s, fresh=False)
    if index.count == 0:
        return []
    k = recipe.k or k
    allowed = None
    if _selective(rq):
        allowed = repo.matching_pks(s, cube.pk, rq)
        if len(allowed) == 0:
            return []
    text = None if recipe.dense_only else indexes.text_for(cube, s)
    if recipe.dense_only:  # index.count + margin: the list rarely needs widening
        n = k if allowed is not None else min(index.count, k + 5)
    else:
        n = max(recipe.candidates, k + 10)
    while True:
        # Fusion needs the head of the dense list exact, not all n: the scan rescores what
        # `fast` would for k results (k x oversample), at least 2n.
        scan = None if recipe.dense_only else max(2 * n, k * indexes.oversample)
        ctx = QueryContext(query, query_vec, at, index, text, allowed, n, scan=scan)
        ranked = _rank(ctx, recipe)
        if recipe.weight("retention") > 0:
            ranked = _with_retention(s, ranked, recipe.weight("retention"), k, at, policy)
        out = _survivors(s, cube, rq, ranked, k)
        exhausted = n >= index.count or all(len(r) < n for r in ranked[1].values())
        if len(out) == k or exhausted:
            return out
        n = min(index.count, n * 4)


def _rank(
    ctx: QueryContext, recipe: Recipe
) -> tuple[list[tuple[int, float]], dict[str, Ranked], dict[str, dict[int, float]]]:
    """(fused order, each generator's ranking, each booster's bonuses)."""
    rankings = {name: GENERATORS[name](ctx) for name in recipe.generators()}
    weights = {name: recipe.weight(name) for name in rankings}
    if recipe.fusion == "weighted":
        fused = weighted_sum(rankings, weights)
    else:
        fused = rrf(rankings, weights, recipe.rrf_k)
    bonuses: dict[str, dict[int, float]] = {}
    total = dict(fused)
    for name in recipe.boosters():  # in BOOSTERS order
        w = recipe.weight(name)
        if name == "recency":
            bonus = recency(ctx, total, w, rrf_k=recipe.rrf_k)
        else:
            bonus = BOOSTERS[name](ctx, total, w)
        bonuses[name] = bonus
        total = dict(total)
        for pk, b in bonus.items():
            total[pk] = total.get(pk, 0.0) + b
    if len(rankings) == 1 and not bonuses:  # one channel: its own scores (cosine, BM25)
        return list(next(iter(rankings.values()))), rankings, bonuses
    order = sorted(total.items(), key=lambda x: (-x[1], x[0]))
    return order, rankings, bonuses


def _with_retention(
    s: Session,
    ranked: tuple[list[tuple[int, float]], dict[str, Ranked], dict[str, dict[int, float]]],
    weight: float,
    k: int,
    at: datetime,
    policy: ForgetPolicy | None,
) -> tuple[list[tuple[int, float]], dict[str, Ranked], dict[str, dict[int, float]]]:
    """Scale the head of the fused list by (1 - w + w * R): a fading memory gives way to an
    equally relevant fresh one, but relevance still leads (w is small in the presets)."""
    order, rankings, bonuses = ranked
    w = min(max(weight, 0.0), 1.0)
    head = order[: max(3 * k, k + 20)]
    rows = repo.record_fields_by_pks(s, [pk for pk, _ in head])
    policy = policy or ForgetPolicy()
    held: dict[int, float] = {}
    rescored = []
    for pk, score in head:
        row = rows.get(pk)
        r = retention(row, at, policy) if row is not None else 1.0
        held[pk] = r
        f = 1.0 - w + w * r
        rescored.append((pk, score * f if score >= 0 else score / max(f, 1e-6)))
    rescored.sort(key=lambda x: (-x[1], x[0]))
    return rescored + order[len(head) :], rankings, {**bonuses, "retention": held}


def _survivors(
    s: Session,
    cube: CubeRow,
    rq: repo.RecordQuery,
    ranked: tuple[list[tuple[int, float]], dict[str, Ranked], dict[str, dict[int, float]]],
    k: int,
) -> list[Candidate]:
    order, rankings, bonuses = ranked
    where: dict[str, dict[int, tuple[int, float]]] = {
        name: {pk: (i, sc) for i, (pk, sc) in enumerate(r, start=1)} for name, r in rankings.items()
    }
    for name, bonus in bonuses.items():
        by = sorted(bonus.items(), key=lambda x: (-x[1], x[0]))
        where[name] = {pk: (i, sc) for i, (pk, sc) in enumerate(by, start=1)}
    out: list[Candidate] = []
    step = k + max(5, k // 2)
    rows: dict[int, Any] = {}
    for i, (pk, score) in enumerate(order):
        if i % step == 0:  # fetch the records a chunk at a time: most calls need one chunk
            rows = repo.record_fields_by_pks(s, [p for p, _ in order[i : i + step]])
        row = rows.get(pk)
        if row is None or row.cube_pk != cube.pk or not rq.matches(row):
            continue  # deleted or changed since the search; never return it
        explain: dict[str, dict[str, float | int]] = {}
        for name, found in where.items():
            if pk in found:
                rank, sc = found[pk]
                explain[name] = {"rank": rank, "score": sc}
        if len(where) > 1 or bonuses:
            explain["fused"] = {"rank": len(out) + 1, "score": score}
        out.append(Candidate(row, score, explain))
        if len(out) == k:
            break
    return out
