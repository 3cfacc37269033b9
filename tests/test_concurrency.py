"""Concurrent writers lose nothing; readers never see half-written state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from memsvc import Memory
from memsvc.store.repos import graph as repo

THREADS = 8
ADDS_PER_THREAD = 12


def test_eight_threads_adding_concurrently_lose_nothing(mem: Memory) -> None:
    mem.create_cube("shared")
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(t: int) -> list[str]:
        ids = []
        for i in range(ADDS_PER_THREAD):
            if i % 3 == 0:  # mix single adds, batches and message lists
                recs = mem.add(
                    [f"thread {t} batch {i} item {j}" for j in range(3)],
                    user_id=f"user{t}",
                    cube="shared",
                )
            elif i % 3 == 1:
                recs = mem.add(f"thread {t} note {i}", user_id=f"user{t}")
            else:
                recs = mem.add(
                    messages=[{"content": f"thread {t} says {i}"}],
                    user_id=f"user{t}",
                    cube="shared",
                )
            ids += [r.id for r in recs]
        return ids

    def reader() -> None:
        while not stop.is_set():
            try:
                for hit in mem.recall("thread note", user_id="user0", k=5):
                    assert hit.record.status == "active"
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for r in readers:
        r.start()
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(writer, range(THREADS)))
    stop.set()
    for r in readers:
        r.join()
    assert errors == []

    written = [i for ids in results for i in ids]
    assert len(written) == len(set(written)) == THREADS * (4 * 3 + 4 + 4)
    for rid in written:
        assert mem.get(rid).status == "active"
    shared = mem.list(cube="shared", limit=1000).items
    own = [r for t in range(THREADS) for r in mem.list(user_id=f"user{t}", limit=1000).items]
    assert {r.id for r in shared} | {r.id for r in own} == set(written)
    info = mem.index_info("shared")
    assert info.vectors == len(shared) and info.seq == info.db_seq
    # Every record is findable by its exact text.
    probe = mem.recall("thread 5 says 8", user_id="x", cube="shared", k=1)[0]
    assert probe.record.content == "thread 5 says 8"


def test_delete_while_recall_never_errs_and_deleted_records_stay_gone(mem: Memory) -> None:
    recs = mem.add(
        [f"harbour log entry {i}: the tide turned at {i} o'clock" for i in range(60)], user_id="d"
    )
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                hits = mem.recall("when did the tide turn", user_id="d", k=20)
                assert all(h.record.status == "active" for h in hits)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    gone = {r.id for r in recs[::2]}
    for i, r in enumerate(recs[::2]):
        mem.delete(r.id, hard=i % 2 == 1)  # soft and hard deletes both
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors[0]
    hits = mem.recall("when did the tide turn", user_id="d", k=60)
    assert not gone & {h.record.id for h in hits}
    assert len(hits) == 30


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_adds_naming_the_same_new_entity_all_succeed(
    backend: str, open_memory: Callable[..., Memory], request: pytest.FixtureRequest
) -> None:
    """PostgreSQL writers do not queue on one lock: two adds that both introduce an entity
    must not fail on its unique key (seen under load as a 409 on a legitimate add)."""
    url = request.getfixturevalue("pg").new_database() if backend == "postgresql" else None
    mem = open_memory(**({"database_url": url} if url else {}))
    mem.add("warm up", user_id="u")
    for round_ in range(4):
        barrier = threading.Barrier(THREADS)

        def add(t: int, round_: int = round_, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            text = f"Zorblax{round_} met Quenteria{round_} in Vel{round_}dar (note {t})."
            return mem.add(text, user_id="u")[0].id

        with ThreadPoolExecutor(THREADS) as pool:
            ids = list(pool.map(add, range(THREADS)))
        assert len(set(ids)) == THREADS
    graph = mem.graph("user:u", types=["mentions"])
    names = [n.label for n in graph.nodes if n.kind == "entity"]
    assert len(names) == len(set(names)) and any("Zorblax3" in n for n in names)


def test_changes_commit_in_sequence_order_so_no_worker_skips_one(
    open_memory: Callable[..., Memory],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three workers on one PostgreSQL: a slow add draws its change sequence number first,
    a quick one second. If the quick one committed first, a third worker catching up in
    between would move past the slow one's number and never index it."""
    url = request.getfixturevalue("pg").new_database()
    slow_writer, quick_writer, reader = (
        open_memory(tmp_path / name, database_url=url, index_sync_seconds=0)
        for name in ("w1", "w2", "r")
    )
    slow_writer.add("seed", user_id="u")
    reader.recall("seed", user_id="u")
    slow = threading.local()
    real = repo.link_entities

    def link(*args: object, **kwargs: object) -> None:  # runs after the records' changes
        if getattr(slow, "on", False):
            time.sleep(1.0)
        real(*args, **kwargs)

    monkeypatch.setattr(repo, "link_entities", link)

    def slow_add() -> None:
        slow.on = True
        slow_writer.add("Quillon restores harpsichords.", user_id="u")

    t = threading.Thread(target=slow_add)
    t.start()
    time.sleep(0.4)  # the slow add holds its sequence number, uncommitted
    quick_writer.add("Bramwell races pigeons.", user_id="u")
    assert reader.recall("pigeons", user_id="u", k=1)[0].record.content.startswith("Bramwell")
    t.join()
    found = [h.record.content for h in reader.recall("harpsichords", user_id="u", k=3)]
    assert "Quillon restores harpsichords." in found
