"""Concurrent writers lose nothing; readers never see half-written state."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from memsvc import Memory

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
