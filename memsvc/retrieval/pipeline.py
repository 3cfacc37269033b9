"""Recall over one cube: channels, fusion, boosters, rescorers, filters and explanations.

Explicit filters (user, session, tags, kinds, time range, metadata) become an id set that
every channel searches within, so a selective filter cannot starve the result. The default
conditions (active, valid at `at`) exclude few records and are checked on the fused list,
which widens until `k` survivors are found.

Every channel runs through the registry (`memsvc/retrieval/channels/`) with one signature and
read-only inputs, stage by stage: the generators (their rankings fused), then the boosters
(each reads the fused scores; their signals are folded in registry order), then the rescorers
(each reads the head of the boosted list). Within a stage the order channels run in changes
nothing (`rank(order=...)`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from memsvc import tracing
from memsvc.retrieval.channels import REGISTRY
from memsvc.retrieval.context import POOL_CHANNELS, QueryContext, Ranked
from memsvc.retrieval.fusion import FOLDS, FUSIONS, RESCORES
from memsvc.retrieval.recipe import Recipe
from memsvc.retrieval.retention import ForgetPolicy
from memsvc.retrieval.source import RecallSource
from memsvc.store.data import RecordData, RecordQuery

__all__ = ["Candidate", "Ranking", "rank", "recall"]

_NOTHING: Mapping[int, float] = MappingProxyType({})
_SPAN_NAMES = {name: f"channel.{name}" for name in REGISTRY}


@dataclass(frozen=True)
class Candidate:
    record: RecordData
    score: float
    explain: dict[str, dict[str, float | int]] = field(default_factory=dict)


class Ranking(NamedTuple):
    order: Ranked  # the final order, best first
    rankings: dict[str, Ranked]  # each generator's ranking
    bonuses: dict[str, dict[int, float]]  # each booster's bonus, each rescorer's signal


def _selective(rq: RecordQuery) -> bool:
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
    source: RecallSource,
    query_vec: np.ndarray | None,
    *,
    k: int,
    rq: RecordQuery,
    recipe: Recipe,
    query: str = "",
    at: datetime,
    policy: ForgetPolicy | None = None,
) -> list[Candidate]:
    """Ranked candidates, all read through `source` (one snapshot of one cube). `query_vec`
    may be None when `recipe.needs_vector` is false."""
    if query_vec is None and recipe.needs_vector:
        raise ValueError("this recipe ranks by cosine: give the query vector")
    index = source.vectors()
    if index.count == 0:
        return []
    k = recipe.k or k
    allowed = None
    if _selective(rq):
        allowed = source.matching_pks(rq)
        if len(allowed) == 0:
            return []
    text = None if recipe.dense_only else source.text()
    pool_from = frozenset(c for c in POOL_CHANNELS if recipe.weight(c) > 0)
    if recipe.dense_only:  # index.count + margin: the list rarely needs widening
        n = k if allowed is not None else min(index.count, k + 5)
    else:
        n = max(recipe.candidates, k + 10)
    while True:
        # Fusion needs the head of the dense list exact, not all n: the scan rescores what
        # `fast` would for k results (k x oversample), at least 2n.
        scan = None if recipe.dense_only else max(2 * n, k * source.oversample)
        ctx = QueryContext(
            query,
            query_vec,
            at,
            index,
            text,
            allowed,
            n,
            scan=scan,
            pool_from=pool_from,
            rrf_k=recipe.rrf_k,
            policy=policy,
            records=source.records,
        )
        ranked = rank(ctx, recipe, k)
        out = _survivors(source, rq, ranked, k)
        exhausted = n >= index.count or all(len(r) < n for r in ranked.rankings.values())
        if len(out) == k or exhausted:
            return out
        n = min(index.count, n * 4)


def _stage(
    names: list[str], ctx: QueryContext, scores: Mapping[int, float], order: Sequence[str] | None
) -> dict[str, Ranked]:
    """Each channel's output, run in `order` (default: as listed), keyed as listed."""
    run = names if order is None else sorted(names, key=list(order).index)
    out = {name: _run(name, ctx, scores) for name in run}
    return {name: out[name] for name in names}


def _run(name: str, ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    """One channel, traced as `channel.<name>` with its hit count (memsvc/tracing.py)."""
    with tracing.span(_SPAN_NAMES.get(name) or f"channel.{name}") as sp:
        found = REGISTRY[name].run(ctx, scores)
        sp.set_attribute("memsvc.hits", len(found))
    return found


def rank(
    ctx: QueryContext, recipe: Recipe, k: int, *, order: Sequence[str] | None = None
) -> Ranking:
    """The recipe's channels over one context. `order` is the order channels run in within
    each stage (default the registry's; it must list every channel the recipe runs): the
    result is the same whatever it is."""
    rankings = _stage(recipe.generators(), ctx, _NOTHING, order)
    weights = {name: recipe.weight(name) for name in rankings}
    with tracing.span("recall.fusion", {"memsvc.fusion": recipe.fusion}) as sp:
        fused = FUSIONS[recipe.fusion](rankings, weights, recipe.rrf_k, recipe.candidates)
        sp.set_attribute("memsvc.hits", len(fused))

    signals = _stage(recipe.boosters(), ctx, MappingProxyType(fused), order)
    bonuses: dict[str, dict[int, float]] = {}
    total = dict(fused)
    for name, signal in signals.items():  # folded in registry order
        fold = FOLDS[REGISTRY[name].fold]
        bonus = fold(dict(signal), total, recipe.weight(name), recipe.rrf_k)
        bonuses[name] = bonus
        for pk, b in bonus.items():
            total[pk] = total.get(pk, 0.0) + b
    if len(rankings) == 1 and not bonuses:  # one channel: its own scores (cosine, BM25)
        final = list(next(iter(rankings.values())))
    else:
        final = sorted(total.items(), key=lambda x: (-x[1], x[0]))

    head = max(3 * k, k + 20)  # rescorers read the records' own fields: the head only
    rescorers = recipe.rescorers()
    if rescorers:
        signals = _stage(rescorers, ctx, MappingProxyType(dict(final[:head])), order)
        for name, signal in signals.items():
            rescore = RESCORES[REGISTRY[name].fold]
            final, held = rescore(final, head, dict(signal), recipe.weight(name))
            bonuses[name] = held
    return Ranking(final, rankings, bonuses)


def _survivors(source: RecallSource, rq: RecordQuery, ranked: Ranking, k: int) -> list[Candidate]:
    order, rankings, bonuses = ranked
    where: dict[str, dict[int, tuple[int, float]]] = {
        name: {pk: (i, sc) for i, (pk, sc) in enumerate(r, start=1)} for name, r in rankings.items()
    }
    for name, bonus in bonuses.items():
        by = sorted(bonus.items(), key=lambda x: (-x[1], x[0]))
        where[name] = {pk: (i, sc) for i, (pk, sc) in enumerate(by, start=1)}
    out: list[Candidate] = []
    step = k + max(5, k // 2)
    records: Mapping[int, RecordData] = {}
    for i, (pk, score) in enumerate(order):
        if i % step == 0:  # fetch the records a chunk at a time: most calls need one chunk
            records = source.records([p for p, _ in order[i : i + step]])
        rec = records.get(pk)
        if rec is None or rec.cube_pk != source.cube_pk or not rq.matches(rec):
            continue  # deleted or changed since the search; never return it
        explain: dict[str, dict[str, float | int]] = {}
        for name, found in where.items():
            if pk in found:
                rank_, sc = found[pk]
                explain[name] = {"rank": rank_, "score": sc}
        if len(where) > 1 or bonuses:
            explain["fused"] = {"rank": len(out) + 1, "score": score}
        out.append(Candidate(rec, score, explain))
        if len(out) == k:
            break
    return out
