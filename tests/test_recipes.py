"""Recipes as data and the retrieval boundary: frozen presets, `describe()` round trips,
`needs_vector`, channel order independence, and `RecordData` across the store boundary."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from memsvc import Memory, retrieval
from memsvc.retrieval import PRESETS, Recipe, RecipeError, parse_recipe
from memsvc.retrieval import context as context_mod
from memsvc.retrieval.channels import CHANNELS, REGISTRY
from memsvc.retrieval.context import QueryContext
from memsvc.retrieval.pipeline import rank
from memsvc.store.data import RecordData, RecordQuery
from memsvc.store.text_index import CubeTextIndex, TextDoc
from memsvc.store.vector_index import CubeIndex

COMPACT = [
    "dense=1+keyword=1|rrf20",
    "dense=1+keyword=0.5+session=0.3|rrf30|n80|k7",
    "keyword=1|weighted",
    "dense=1+recency=0.25+retention=0.00001|rrf30|weighted|n200",
    "temporal=1+entity=0.3+speaker=0|rrf5",
]

# ---- presets are frozen ------------------------------------------------------------------------


def test_presets_cannot_be_mutated() -> None:
    before = {name: (p.describe(), p.to_dict()) for name, p in PRESETS.items()}
    fast = parse_recipe("fast")
    with pytest.raises(TypeError):
        fast.channels["keyword"] = 1.0  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.candidates = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        PRESETS["fast"] = Recipe(channels={"keyword": 1.0})  # type: ignore[index]
    # what a caller gets out can be changed freely without touching the preset
    d = parse_recipe("deep").to_dict()
    d["channels"]["dense"] = 0.0
    d["candidates"] = 7
    assert parse_recipe({"preset": "deep", "candidates": 200}).candidates == 200
    wider = PRESETS["balanced"].replace(candidates=300)
    assert wider.candidates == 300 and wider.name == "custom"
    assert {name: (p.describe(), p.to_dict()) for name, p in PRESETS.items()} == before
    assert PRESETS["deep"].candidates == 100 and PRESETS["deep"].weight("dense") == 1.0


def test_a_recipe_does_not_alias_the_dict_it_was_made_from() -> None:
    weights = {"dense": 1.0, "keyword": 0.5}
    r = Recipe(channels=weights)
    weights["keyword"] = 9.0
    weights["entity"] = 1.0
    assert r.channels == {"dense": 1.0, "keyword": 0.5}
    assert hash(r) == hash(Recipe(channels={"keyword": 0.5, "dense": 1}))
    with pytest.raises(RecipeError):
        r.replace(channels={"dense": 1.0, "warp": 1.0})


# ---- describe() round trips --------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_describes_itself(name: str) -> None:
    preset = PRESETS[name]
    text = preset.describe()
    assert "=" in text and parse_recipe(text) == preset
    assert parse_recipe(text).describe() == text


@pytest.mark.parametrize("text", COMPACT)
def test_compact_strings_round_trip(text: str) -> None:
    r = parse_recipe(text)
    assert parse_recipe(r.describe()) == r
    assert parse_recipe(r.to_dict()) == r
    assert parse_recipe(parse_recipe(r.to_dict()).describe()) == r


def test_describe_is_compact() -> None:
    assert PRESETS["fast"].describe() == "dense=1|rrf20"
    assert parse_recipe("dense=1+keyword=0.5|rrf30|n80|k7").describe() == (
        "dense=1+keyword=0.5|rrf30|n80|k7"
    )
    assert PRESETS["deep"].describe().endswith("|weighted|n100")


# ---- needs_vector ------------------------------------------------------------------------------


def test_needs_vector() -> None:
    assert all(p.needs_vector for p in PRESETS.values())
    for text in ("keyword=1", "keyword=1+session=0.5+speaker=0.5+recency=1+retention=0.2"):
        assert not parse_recipe(text).needs_vector, text
    for text in ("dense=1", "keyword=1+entity=0.1", "keyword=1+temporal=1"):
        assert parse_recipe(text).needs_vector, text
    assert not parse_recipe("keyword=1+dense=0").needs_vector  # weight 0: never runs
    assert {c for c in CHANNELS if REGISTRY[c].needs_vector} == {
        "dense",
        "sentence",
        "aside",
        "entity",
        "temporal",
    }


class CountingEmbedder:
    """The real embedder, counting query embeddings."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.queries = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, texts: Sequence[str], **kw: Any) -> np.ndarray:
        if kw.get("query"):
            self.queries += len(texts)
        return self.inner.encode(texts, **kw)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.queries += len(texts)
        return self.inner.encode_queries(texts)


def test_a_recipe_without_dense_channels_never_embeds_the_query(embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    counting = CountingEmbedder(embedder)
    with Memory(tmp_path / "data", embedder=counting) as mem:  # type: ignore[arg-type]
        mem.add(["Zorblax ordered tea.", "Quentin sailed to Oslo."], user_id="u")
        counting.queries = 0
        for recipe in ("keyword=1", "keyword=1+session=0.5+speaker=0.5+recency=0.3|weighted"):
            hits = mem.recall("Zorblax", user_id="u", k=3, recipe=recipe)
            assert [h.record.content for h in hits] == ["Zorblax ordered tea."]
        assert counting.queries == 0
        assert mem.recall("tea", user_id="u", k=1, recipe="fast")
        assert counting.queries == 1


# ---- channels: one signature, no order dependence ------------------------------------------------

T0 = datetime(2023, 5, 1, 12, tzinfo=UTC)
SPEAKERS = ["Alice", "Bob", "Carol"]


def _record(pk: int, content: str, session: str, when: datetime) -> RecordData:
    return RecordData(
        pk=pk,
        id=f"r{pk}",
        cube_pk=1,
        tier="plaintext",
        kind="episode",
        content=content,
        source={},
        user_id="u",
        agent_id=None,
        session_id=session,
        event_time=when,
        valid_from=None,
        valid_to=None,
        created_at=when,
        updated_at=when,
        version=1,
        status="active",
        importance=0.3 + 0.1 * (pk % 5),
        strength=1.0 + (pk % 3),
        recall_count=0,
        last_recalled_at=None,
        tags=[],
        entities=[],
        embedding_precision="float32",
        meta={},
        pinned=pk % 11 == 0,
        fact_key=None,
    )


class FakeSource:
    """A `RecallSource` over an in-memory cube: ~240 turns in 12 sessions of three speakers."""

    def __init__(self, seed: int = 3, n: int = 240, dim: int = 16) -> None:
        rng = np.random.default_rng(seed)
        self.index = CubeIndex(dim, "fake")
        self.side = CubeTextIndex()
        self.recs: dict[int, RecordData] = {}
        vecs = rng.normal(size=(n, dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        words = ["tea", "oslo", "boat", "garden", "trip", "kitten", "paint", "music"]
        docs = []
        for i in range(n):
            pk = i + 1
            who = SPEAKERS[i % 3]
            ask = i % 4 == 0
            text = f"{who}: {words[i % 8]} {words[(i * 3) % 8]} {'why?' if ask else 'yes'}"
            when = T0 - timedelta(days=int(i // 20) * 9, hours=i % 20)
            session = f"s{i // 20}"
            self.recs[pk] = _record(pk, text, session, when)
            docs.append(
                TextDoc(
                    pk=pk,
                    text=text,
                    session=session,
                    speaker=who,
                    event_time=when,
                    anchor=((when - timedelta(days=1)).timestamp(), when.timestamp())
                    if i % 5 == 0
                    else None,
                    entities=(who.lower(), words[i % 8]),
                    asks=ask,
                )
            )
        self.index.upsert(np.arange(1, n + 1, dtype=np.int64), vecs)
        self.side.upsert(docs)
        self.qvec = vecs[7] + 0.5 * vecs[42]
        self.qvec /= np.linalg.norm(self.qvec)

    cube_pk = 1
    oversample = 4

    def vectors(self) -> CubeIndex:
        return self.index

    def text(self) -> CubeTextIndex:
        return self.side

    def matching_pks(self, rq: RecordQuery) -> np.ndarray:
        return np.array([pk for pk, r in self.recs.items() if rq.matches(r)], dtype=np.int64)

    def records(self, pks: Sequence[int]) -> Mapping[int, RecordData]:
        return {int(p): self.recs[int(p)] for p in pks if int(p) in self.recs}


RECIPES = [
    *PRESETS,
    "dense=1+keyword=1+entity=1+temporal=1+session=1+speaker=0.5+recency=0.5+retention=0.5|rrf20",
    "keyword=1+temporal=1+entity=0.5+session=1+speaker=1+recency=1|weighted|n30",
    "dense=1+recency=0.5|rrf30",
]
QUERIES = ["What did Alice say about tea?", "When did Bob go on the trip?", "kitten garden music"]


def _ctx(src: FakeSource, recipe: Recipe, query: str, n: int, allowed=None) -> QueryContext:  # type: ignore[no-untyped-def]
    pool = frozenset(c for c in ("dense", "keyword") if recipe.weight(c) > 0)
    return QueryContext(
        query,
        src.qvec,
        T0,
        src.index,
        src.side,
        allowed,
        n,
        scan=2 * n,
        pool_from=pool,
        rrf_k=recipe.rrf_k,
        records=src.records,
    )


@pytest.mark.parametrize("limit", [8, 30])
@pytest.mark.parametrize("recipe_text", RECIPES)
def test_results_do_not_depend_on_channel_run_order(
    recipe_text: str, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a small exact-subset limit sends entity and temporal through the shared candidate pool
    monkeypatch.setattr(context_mod, "EXACT_SUBSET_LIMIT", limit)
    src = FakeSource()
    recipe = parse_recipe(recipe_text)
    names = recipe.active()
    rng = random.Random(5)
    orders = [list(reversed(names))] + [rng.sample(names, len(names)) for _ in range(6)]
    for query, allowed in itertools.product(QUERIES, (None, np.arange(1, 150, dtype=np.int64))):
        want = rank(_ctx(src, recipe, query, 20, allowed), recipe, 5)
        assert want.order, (query, recipe_text)
        for order in orders:  # a fresh context each time: nothing is remembered across runs
            got = rank(_ctx(src, recipe, query, 20, allowed), recipe, 5, order=order)
            assert got == want, (query, order)
        # and on a context other orders already ran on
        ctx = _ctx(src, recipe, query, 20, allowed)
        for order in orders:
            assert rank(ctx, recipe, 5, order=order) == want


def test_every_channel_has_one_signature_and_mutates_nothing() -> None:
    src = FakeSource()
    recipe = parse_recipe("deep")
    ctx = _ctx(src, recipe, QUERIES[0], 20)
    fused = {pk: 1.0 / pk for pk in range(1, 60)}
    frozen = dict(fused)
    for name, spec in REGISTRY.items():
        out = spec.run(ctx, fused if spec.role != "generator" else {})
        assert isinstance(out, list), name
        assert all(isinstance(p, int) and isinstance(s, float) for p, s in out), name
        assert fused == frozen, name
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.n = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.pool[1] = 0.5  # type: ignore[index]


def test_recall_through_a_source_returns_record_snapshots() -> None:
    src = FakeSource()
    rq = RecordQuery(valid_at=T0)
    for recipe_text in RECIPES:
        recipe = parse_recipe(recipe_text)
        qvec = src.qvec if recipe.needs_vector else None
        found = retrieval.recall(src, qvec, k=5, rq=rq, recipe=recipe, query=QUERIES[0], at=T0)
        assert len(found) == 5, recipe_text
        assert all(isinstance(c.record, RecordData) for c in found)
        assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    with pytest.raises(ValueError):
        retrieval.recall(src, None, k=5, rq=rq, recipe=PRESETS["fast"], at=T0)


def test_the_store_source_hands_up_record_data(mem: Memory) -> None:
    from memsvc.store.recall_source import recall_source

    added = mem.add(["Zorblax ordered tea.", "Quentin sailed to Oslo."], user_id="u")
    engine = mem._engine
    with engine.db.reading() as tx:
        cube = tx.cubes.find(engine.tenant_pk(mem.tenant), name="user:u")
        assert cube is not None
        source = recall_source(tx, engine.indexes, cube)
        assert source.cube_pk == cube.pk and source.vectors().count == 2
        pks = [int(p) for p in source.matching_pks(RecordQuery(user_id="u"))]
        records = source.records(pks)
        assert len(records) == 2 and all(isinstance(r, RecordData) for r in records.values())
        assert {r.content for r in records.values()} == {a.content for a in added}
        assert source.text().count == 2
        found = retrieval.recall(
            source,
            None,
            k=2,
            rq=RecordQuery(valid_at=engine.now()),
            recipe=parse_recipe("keyword=1"),
            query="Zorblax",
            at=engine.now(),
        )
        assert [c.record.content for c in found] == ["Zorblax ordered tea."]
        assert isinstance(found[0].record, RecordData)
