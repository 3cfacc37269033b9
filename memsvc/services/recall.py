"""Recall: plan (every check that needs no database), embed the query (only when a channel of
the recipe ranks by cosine), search one cube in one read transaction, reinforce what was
recalled."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio.to_thread
import numpy as np

from memsvc import retrieval, tracing
from memsvc._convert import record_model
from memsvc.embedder import SentenceTransformerEmbedder, encode_queries
from memsvc.errors import CubeNotFound, InvalidInput
from memsvc.models import Filters, Hit
from memsvc.retrieval.recipe import Recipe, RecipeError, parse_recipe
from memsvc.services.cubes import CubeService, default_cube_name
from memsvc.store.data import RecordQuery
from memsvc.store.recall_source import recall_source
from memsvc.validation import brief, check_ident, check_k, check_text, to_utc

__all__ = ["RecallService", "record_query"]

RecipeArg = str | dict[str, Any] | Recipe | None


@dataclass(frozen=True)
class _RecallPlan:
    query: str
    user_id: str
    k: int
    rq: RecordQuery
    cube: str | None
    recipe: Recipe
    reinforce: bool = True  # recalling a memory strengthens it (memsvc/forgetting.py)


def record_query(filters: Filters | dict[str, Any] | None) -> RecordQuery:
    """The store's record conditions for public `Filters` (or their dict form)."""
    if filters is None:
        return RecordQuery()
    if isinstance(filters, dict):
        try:
            filters = Filters.model_validate(filters)
        except ValueError as exc:
            raise InvalidInput(
                "bad filters: " + brief(exc, prefix="filters"), details={"field": "filters"}
            ) from exc
    if not isinstance(filters, Filters):
        raise InvalidInput("filters must be a Filters or a dict", details={"field": "filters"})
    return RecordQuery(
        user_id=filters.user_id,
        agent_id=filters.agent_id,
        session_id=filters.session_id,
        kinds=tuple(filters.kinds),
        tiers=tuple(filters.tiers),
        tags=tuple(filters.tags),
        since=to_utc(filters.since, field="filters.since"),
        until=to_utc(filters.until, field="filters.until"),
        metadata=dict(filters.metadata),
    )


class RecallService:
    def __init__(self, cubes: CubeService) -> None:
        self.cubes = cubes
        self.engine = cubes.engine

    def recall(
        self,
        query: str,
        *,
        user_id: str,
        k: int = 10,
        filters: Filters | dict[str, Any] | None = None,
        at: datetime | str | float | None = None,
        cube: str | None = None,
        recipe: RecipeArg = None,
    ) -> list[Hit]:
        """The `k` records most relevant to `query`, best first, each with per-channel explain.

        `at` is the reference time (default now): only records valid then are returned, and
        relative times in the query ("last week") are read from it. `recipe` picks the
        channels and fusion: a preset ("fast", "balanced" (default), "deep"), a compact
        string ("dense=1+keyword=1|rrf20") or a dict / `Recipe`.
        """
        plan = self._plan(
            query, user_id=user_id, k=k, filters=filters, at=at, cube=cube, recipe=recipe
        )
        qvec = None
        if plan.recipe.needs_vector:
            with tracing.span("embed.query"):
                qvec = encode_queries(self.engine.embedder, [plan.query])[0]
        return self._recall_with(plan, qvec)

    async def arecall(
        self,
        query: str,
        *,
        user_id: str,
        k: int = 10,
        filters: Filters | dict[str, Any] | None = None,
        at: datetime | str | float | None = None,
        cube: str | None = None,
        recipe: RecipeArg = None,
    ) -> list[Hit]:
        """`recall` for an event loop (the HTTP layer): the query embedding is awaited, not
        waited on by a pool thread; the search runs in a worker thread (anyio's pool, the
        one sync routes use), since a cold cube's index load or side-index build takes
        seconds at 100k records and would stall every other request on the loop."""
        plan = self._plan(
            query, user_id=user_id, k=k, filters=filters, at=at, cube=cube, recipe=recipe
        )
        qvec = None
        if plan.recipe.needs_vector:
            emb = self.engine.embedder
            with tracing.span("embed.query"):
                if isinstance(emb, SentenceTransformerEmbedder):
                    vecs = await asyncio.wrap_future(emb.submit([plan.query], query=True))
                else:  # an embedder without a queue of its own
                    loop = asyncio.get_running_loop()
                    vecs = await loop.run_in_executor(None, encode_queries, emb, [plan.query])
            qvec = vecs[0]
        return await anyio.to_thread.run_sync(self._recall_with, plan, qvec)

    def _plan(
        self,
        query: str,
        *,
        user_id: str,
        k: int = 10,
        filters: Filters | dict[str, Any] | None = None,
        at: datetime | str | float | None = None,
        cube: str | None = None,
        recipe: RecipeArg = None,
    ) -> _RecallPlan:
        """Every check that needs no database, so bad input fails before any embedding."""
        st = self.engine.settings
        query = check_text(query, field="query", max_bytes=st.max_text_bytes)
        check_ident(user_id, field="user_id", required=True)
        k = check_k(k, max_k=st.max_k)
        rq = record_query(filters)
        rq.valid_at = to_utc(at, field="at") or self.engine.now()
        if cube is not None and (not isinstance(cube, str) or not cube or len(cube) > 300):
            raise InvalidInput("cube must be a cube name or id", details={"field": "cube"})
        try:
            chosen = parse_recipe(recipe if recipe is not None else st.recall_recipe)
        except RecipeError as exc:
            raise InvalidInput(str(exc), details={"field": "recipe"}) from exc
        if tracing.active():  # on the SDK call's span: no query text unless opted in
            attrs: dict[str, str | int] = {"memsvc.k": k, "memsvc.recipe": chosen.describe()}
            if st.otel_capture_query:
                attrs["memsvc.query"] = query
            tracing.annotate(attrs)
        return _RecallPlan(query=query, user_id=user_id, k=k, rq=rq, cube=cube, recipe=chosen)

    def _recall_with(self, plan: _RecallPlan, qvec: np.ndarray | None) -> list[Hit]:
        """One read transaction: the cube, the index catch-up, the search and the records."""
        engine = self.engine
        tenant_pk = self.cubes.tenant_pk
        with engine.db.reading() as tx:
            if plan.cube is not None:
                cube = engine.recall_cube(tx, tenant_pk, plan.cube, by_name=False)
                if cube is not None and not self.cubes.owns(cube):
                    # a share may have been revoked since the lookup was cached
                    cube = self.cubes.shared(tx, plan.cube)
                if cube is None:
                    raise CubeNotFound(f"cube {plan.cube!r} not found", details={"cube": plan.cube})
            else:
                name = default_cube_name(plan.user_id)
                cube = engine.recall_cube(tx, tenant_pk, name, by_name=True)
                if cube is None:
                    return []
            self.cubes.check_model(cube)
            found = retrieval.recall(
                recall_source(tx, engine.indexes, cube),
                qvec,
                k=plan.k,
                rq=plan.rq,
                recipe=plan.recipe,
                query=plan.query,
                at=plan.rq.valid_at or engine.now(),
                policy=engine.policy,
            )
            reader = not self.cubes.owns(cube)
            hits = [
                Hit(
                    record=record_model(c.record, cube, reader=reader),
                    score=c.score,
                    explain=c.explain,
                )
                for c in found
            ]
        if tracing.active():  # on the SDK call's span (the read transaction's has ended)
            tracing.annotate({"memsvc.hits": len(hits), "memsvc.cube_id": cube.id})
        # Only the owner's recalls reinforce: a reader's would change the owner's strengths
        # and recall counts and, through the recall events, what gets promoted and evicted.
        if found and plan.reinforce and self.cubes.owns(cube):
            engine.reinforcer.note([c.record.pk for c in found], engine.now())
        return hits
