"""The per-worker index budget (MEMSVC_INDEX_MEMORY_BYTES): least-recently-used eviction of
whole cubes, reloads that catch up from the change log, a cube bigger than the budget, loads
that stall no other cube (real threads, and the REST search route on a real event loop), and
the figures in `/metrics` and `memsvc info`."""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import threading
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from typer.testing import CliRunner

from memsvc import ManualClock, Memory, SentenceTransformerEmbedder, Settings
from memsvc.api.app import create_app
from memsvc.cli import app as cli_app
from memsvc.cli import common
from memsvc.config import default_index_memory_bytes
from memsvc.evals.corpus import generated_sentences
from memsvc.models import IndexCache
from memsvc.retrieval.analyze import text_doc
from memsvc.store import indexes
from memsvc.store.indexes import IndexManager
from memsvc.store.text_index import CubeTextIndex
from memsvc.store.two_stage import CodeTable

USERS = [f"u{i}" for i in range(5)]
TEXTS = generated_sentences(5 * 6 + 60, seed=3)


def _fill(mem: Memory) -> None:
    """Five small cubes (6 records each) and one bigger one (60 records)."""
    for i, user in enumerate(USERS):
        mem.add(TEXTS[i * 6 : (i + 1) * 6], user_id=user)
    mem.add(TEXTS[30:], user_id="big")


def _hits(mem: Memory, user: str) -> list[tuple[str, float]]:
    return [
        (h.record.id, round(h.score, 5))
        for h in mem.recall("who went where and when", user_id=user, k=4)
    ]


def _manager(mem: Memory) -> IndexManager:
    return mem._engine.indexes


# Every handle runs on one stopped clock: recalls reinforce what they return, and with time
# passing that would change the scores a later handle sees (not what these tests compare).
CLOCK = ManualClock(datetime(2026, 6, 1, 12, tzinfo=UTC))


@pytest.fixture
def filled(open_memory: Callable[..., Memory], tmp_path: Path) -> tuple[Memory, Path]:
    """A data directory holding the six cubes, opened with no budget to speak of."""
    home = tmp_path / "d"
    mem = open_memory(home, CLOCK)
    _fill(mem)
    return mem, home


def test_default_budget_is_a_share_of_the_machine() -> None:
    default = default_index_memory_bytes()
    assert default >= 64 * 2**20
    assert Settings().index_memory_bytes == default
    with pytest.raises(ValueError):
        Settings(index_memory_bytes=0)


def test_lru_eviction_stays_within_budget_and_reloads_answer_alike(
    filled: tuple[Memory, Path], open_memory: Callable[..., Memory]
) -> None:
    ref, home = filled
    expected = {u: _hits(ref, u) for u in USERS}
    sizes = [c.nbytes for c in _manager(ref)._lru.values()]
    assert len(sizes) == len(USERS) and sum(sizes) == ref.index_cache().bytes
    budget = int(2.5 * max(sizes))  # room for two small cubes
    mem = open_memory(home, CLOCK, index_memory_bytes=budget)
    assert mem.index_cache() == IndexCache(
        budget_bytes=budget, bytes=0, cubes=0, hits=0, misses=0, evictions=0, load_seconds=0.0
    )
    for _ in range(2):
        for user in USERS:
            assert _hits(mem, user) == expected[user]
            cache = mem.index_cache()
            assert cache.bytes <= budget and cache.cubes <= 2
    cache = mem.index_cache()
    assert cache.misses == 2 * len(USERS) and cache.evictions == 2 * len(USERS) - 2
    assert cache.hits == 0 and cache.load_seconds > 0
    # Least recently used goes first: u0 was just used, so loading u2 evicts u1, not u0.
    for user in ("u0", "u1", "u0", "u2"):
        mem.recall("anything", user_id=user)
    before = mem.index_cache()
    mem.recall("anything", user_id="u0")
    assert mem.index_cache().hits == before.hits + 1
    mem.recall("anything", user_id="u1")
    assert mem.index_cache().misses == before.misses + 1


def test_an_evicted_cube_catches_up_with_writes_made_meanwhile(
    filled: tuple[Memory, Path], open_memory: Callable[..., Memory]
) -> None:
    other, home = filled  # another handle on the data: as another worker
    mem = open_memory(home, CLOCK, index_memory_bytes=1)  # every cube is over it: one kept at most
    first = mem.recall("anything", user_id="u0")
    assert len(first) == 6
    mem.recall("anything", user_id="u1")  # u0 is evicted
    assert mem.index_cache().evictions == 1 and mem.index_cache().cubes == 1
    theirs = other.add("Zephyrine repaired the lighthouse lamp.", user_id="u0")[0]
    mine = mem.add("Quillon painted the harbour crane.", user_id="u0")[0]  # u0 stays out
    assert mem.index_cache().cubes == 1
    other.delete(first[0].record.id)
    hits = mem.recall("lighthouse lamp repair", user_id="u0", k=10)
    assert hits[0].record.id == theirs.id and mine.id in {h.record.id for h in hits}
    assert len(hits) == 7  # 6 + 2 added - 1 deleted
    assert mem.recall("harbour crane painting", user_id="u0", k=1)[0].record.id == mine.id


def test_maintenance_catches_up_loaded_cubes_and_loads_no_other(
    filled: tuple[Memory, Path], open_memory: Callable[..., Memory]
) -> None:
    """A sweep over every cube must not load them all: that would push the recalled ones out."""
    other, home = filled
    mem = open_memory(home, CLOCK)
    mem.recall("anything", user_id="u0")  # the hot cube
    theirs = other.add("Zephyrine repaired the lighthouse lamp.", user_id="u0")[0]
    before = mem.index_cache()
    runs = {r.cube: r for r in mem.maintain_all()}
    after = mem.index_cache()
    assert len(runs) == len(USERS) + 1
    assert (after.cubes, after.misses, after.evictions) == (1, before.misses, 0)
    assert runs["user:u0"].counts["index_vectors"] == 7  # caught up with the other's add
    assert "index_vectors" not in runs["user:u1"].counts
    assert mem.recall("lighthouse lamp repair", user_id="u0", k=1)[0].record.id == theirs.id


def test_a_cube_bigger_than_the_budget_is_served_and_evicted_first(
    filled: tuple[Memory, Path], open_memory: Callable[..., Memory]
) -> None:
    ref, home = filled
    for user in USERS:
        ref.recall("anything", user_id=user)
    expected = _hits(ref, "big")
    sizes = sorted(c.nbytes for c in _manager(ref)._lru.values())
    small, big = sizes[:-1], sizes[-1]
    budget = small[0] + small[1] + small[2] // 2  # two small cubes fit, the big one never
    assert big > budget
    mem = open_memory(home, CLOCK, index_memory_bytes=budget)
    mem.recall("anything", user_id="u0")
    mem.recall("anything", user_id="u1")
    assert _hits(mem, "big") == expected
    cache = mem.index_cache()
    # Served and kept for now, evicting no other cube for it: the budget plus that cube.
    assert cache.cubes == 3 and cache.evictions == 0 and budget < cache.bytes <= budget + big
    assert _hits(mem, "big") == expected
    assert mem.index_cache().hits == cache.hits + 1
    mem.recall("anything", user_id="u0")
    assert mem.index_cache().hits == cache.hits + 2  # u0 stayed
    mem.recall("anything", user_id="u2")  # a load: the big cube goes first, then u1 (LRU)
    cache = mem.index_cache()
    assert cache.evictions == 2 and cache.cubes == 2 and cache.bytes <= budget
    assert _hits(mem, "big") == expected


def _gate_loads(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, user: str
) -> tuple[threading.Event, threading.Event, list[int]]:
    """Make the vector-index load of `user`'s cube wait for `release` (set `entered` first);
    count those loads. Every other cube loads as usual."""
    manager = _manager(mem)
    real = manager._load
    entered, release, loads = threading.Event(), threading.Event(), []

    def gated(cube: Any, c: Any) -> Any:
        if cube.name == f"user:{user}":
            loads.append(cube.pk)
            entered.set()
            assert release.wait(20)
        return real(cube, c)

    monkeypatch.setattr(manager, "_load", gated)
    return entered, release, loads


def test_a_slow_load_stalls_no_other_cube_and_concurrent_first_recalls_load_once(
    filled: tuple[Memory, Path], open_memory: Callable[..., Memory], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, home = filled
    mem = open_memory(home, CLOCK)
    warm = _hits(mem, "u1")  # u1 is loaded; u0 is cold
    entered, release, loads = _gate_loads(mem, monkeypatch, "u0")
    analyzed: list[int] = []
    analyzer = _manager(mem).analyzer
    assert analyzer is not None

    def counting(row: Any) -> Any:
        analyzed.append(row.pk)
        return analyzer(row)

    monkeypatch.setattr(_manager(mem), "analyzer", counting)
    results: list[list[tuple[str, float]]] = []
    start = threading.Barrier(6)

    def first_recall() -> None:
        start.wait()
        results.append(_hits(mem, "u0"))

    threads = [threading.Thread(target=first_recall) for _ in range(6)]
    for t in threads:
        t.start()
    assert entered.wait(20)
    t0 = time.perf_counter()
    assert _hits(mem, "u1") == warm  # while u0's load hangs
    assert time.perf_counter() - t0 < 2.0
    assert all(t.is_alive() for t in threads)  # the six still wait for u0's one load
    release.set()
    for t in threads:
        t.join(30)
    assert len(results) == 6 and all(r == results[0] for r in results) and len(results[0]) == 4
    assert len(loads) == 1  # one load for six first recalls
    assert sorted(analyzed) == sorted(set(analyzed)) and len(analyzed) == 6  # one side index
    assert mem.index_cache().misses == 2  # u1 before, u0 once


def test_a_small_cubes_side_index_comes_from_its_loads_one_read(
    filled: tuple[Memory, Path], open_memory: Callable[..., Memory], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold small cube's first recall reads its records once for vectors, sentence keys and
    side index (it read them three times, a round trip each); a cube over the limit still
    builds its side index in its first recall, and both ways rank alike."""
    _, home = filled
    mem = open_memory(home, CLOCK)
    manager = _manager(mem)
    reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM memory_records" in statement:
            reads.append(statement)

    event.listen(manager.db.read_engine, "before_cursor_execute", count)
    try:
        small = _hits(mem, "big")  # 60 records: under the limit
    finally:
        event.remove(manager.db.read_engine, "before_cursor_execute", count)
    assert len(reads) == 2  # the load's one read, then the hits' records
    (loaded,) = [c for c in manager._cubes.values() if c.index is not None]
    assert loaded.text is not None and loaded.text.count == 60
    assert loaded.text.seq == loaded.index.seq

    monkeypatch.setattr(indexes, "_TEXT_WITH_LOAD_MAX", 10)
    again = open_memory(home, CLOCK)
    assert _hits(again, "big") == small
    assert mem.index_cache().load_seconds > 0 and again.index_cache().load_seconds > 0


def test_the_search_route_leaves_the_event_loop_free_during_a_load(
    open_memory: Callable[..., Memory], monkeypatch: pytest.MonkeyPatch
) -> None:
    mem = open_memory()
    acme = mem.for_tenant("acme")
    for user in ("cold", "warm"):
        acme.add(TEXTS[:4], user_id=user)
    key = mem.keys.create("acme")[1]
    acme.recall("anything", user_id="warm")
    entered, release, loads = _gate_loads(mem, monkeypatch, "cold")
    app = create_app(mem)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://memsvc", headers=headers, timeout=30
        ) as http:
            body = {"query": "who went where", "k": 2}
            cold = asyncio.create_task(
                http.post("/v1/memories/search", json={**body, "user_id": "cold"})
            )
            while not entered.is_set():  # never true if the load blocked the loop
                await asyncio.sleep(0.01)
            warm = await asyncio.wait_for(
                http.post("/v1/memories/search", json={**body, "user_id": "warm"}), 5
            )
            assert warm.status_code == 200 and len(warm.json()) == 2
            assert not cold.done()
            release.set()
            answer = await cold
            assert answer.status_code == 200 and len(answer.json()) == 2

    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        release.set()
    assert len(loads) == 1


def test_metrics_and_readiness_show_the_cache_and_load_nothing(
    filled: tuple[Memory, Path], open_memory: Callable[..., Memory]
) -> None:
    _, home = filled
    mem = open_memory(home, CLOCK, index_memory_bytes=1, operator_token="op-token")
    with TestClient(create_app(mem)) as c:
        op = {"Authorization": "Bearer op-token"}
        deadline = time.monotonic() + 60
        while (ready := c.get("/readyz", headers=op)).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Ready with no cube index loaded: start-up waits for the database and model only.
        assert ready.json() == {"status": "ready", "cubes": 6, "indexes_loaded": 0}
        assert mem.index_cache().cubes == 0
        for user in ("u0", "u1", "u1"):
            mem.recall("anything", user_id=user)
        cache = mem.index_cache()
        text = c.get("/metrics", headers=op).text
    figures = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("memsvc_index_")
    }
    assert figures["memsvc_index_memory_bytes"] == cache.bytes > 0
    assert figures["memsvc_index_memory_budget_bytes"] == 1
    assert figures["memsvc_index_cubes_loaded"] == 1
    assert figures["memsvc_index_cache_hits_total"] == 1
    assert figures["memsvc_index_cache_misses_total"] == 2
    assert figures["memsvc_index_cache_evictions_total"] == 1
    assert figures["memsvc_index_load_seconds_total"] == pytest.approx(cache.load_seconds)
    assert "# TYPE memsvc_index_cache_misses_total counter" in text


def test_info_shows_the_index_cache(
    filled: tuple[Memory, Path],
    embedder: SentenceTransformerEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mem, home = filled
    monkeypatch.setattr(common, "Memory", functools.partial(Memory, embedder=embedder))
    target = ["--data-dir", str(home)]
    if mem.settings.database_url:
        target += ["--database-url", mem.settings.database_url]
    runner = CliRunner()
    env = {"MEMSVC_URL": None, "MEMSVC_INDEX_MEMORY_BYTES": "1"}
    res = runner.invoke(cli_app, ["info", *target, "--json"], env=env)
    assert res.exit_code == 0, res.output
    cache = json.loads(res.stdout)["index_cache"]
    # info reads each of the 6 cubes' index: 6 loads, each evicting the one before
    assert cache["budget_bytes"] == 1 and cache["cubes"] == 1
    assert cache["misses"] == 6 and cache["evictions"] == 5 and cache["load_seconds"] > 0
    res = runner.invoke(cli_app, ["info", *target], env=env)
    assert res.exit_code == 0, res.output
    assert "index cache: " in res.stdout and "6 misses, 5 evictions" in res.stdout


def test_the_byte_estimates_match_what_is_allocated() -> None:
    """`nbytes` (what the budget counts) against tracemalloc, for the side index and the
    two-stage table of 1,000 records."""
    texts = generated_sentences(1000, seed=11)
    rows = [
        SimpleNamespace(
            pk=i + 1,
            content=t,
            source={"speaker": "Alice" if i % 2 else "Bob"},
            session_id=f"s{i // 20}",
            event_time=datetime(2024, 1, 1 + i % 28, tzinfo=UTC),
            entities=("alice", "bob"),
        )
        for i, t in enumerate(texts)
    ]
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((1000, 384)).astype(np.float32)
    pks = np.arange(1, 1001, dtype=np.int64)
    for build in (lambda: _text_index(rows), lambda: _table(pks, vecs)):
        build()  # module caches (stems, the shared rotation) are filled outside the count
        gc.collect()
        tracemalloc.start()
        held = build()
        gc.collect()
        measured = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert 0.8 < held.nbytes / measured < 1.25, (held.nbytes, measured)


def _text_index(rows: list[Any]) -> CubeTextIndex:
    text = CubeTextIndex()
    text.upsert([text_doc(r) for r in rows])
    text.bm25("Alice went to the market last week", 10)
    return text


def _table(pks: np.ndarray, vecs: np.ndarray) -> CodeTable:
    table = CodeTable(384, "RBin,Rescore20")
    table.rebuild(pks, vecs.copy())
    return table


def test_recall_remembers_a_bounded_number_of_cube_lookups(
    filled: tuple[Memory, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from memsvc.services import engine

    mem, _ = filled
    monkeypatch.setattr(engine, "_RECALL_CUBES_KEPT", 3)
    for user in [*USERS, "big"]:
        assert mem.recall("anything", user_id=user)
        assert len(mem._engine._cubes) <= 3
