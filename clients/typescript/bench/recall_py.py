"""The Python side of the TypeScript client's recall benchmark (bench/recall.ts runs it).

    python recall_py.py corpus RECORDS QUERIES       -> {"texts": [...], "queries": [...]}
    python recall_py.py load URL KEY CALLERS SECONDS QUERIES.json {sync|async}

`load` runs CALLERS callers of `recall` in a closed loop for SECONDS against a running server,
as bench/recall.ts does with the TypeScript client: `sync` is one `MemoryClient` per caller
thread, `async` one `AsyncMemoryClient` shared by CALLERS asyncio tasks (as memsvc's own
bench_api). Prints requests, seconds, requests/s, p50/p95 latency and the client process's
CPU time per request as JSON.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

from memsvc import AsyncMemoryClient, MemoryClient
from memsvc.evals.corpus import generated_sentences, texts

USER = "bench"


def _summary(latencies: list[float], elapsed: float, callers: int, cpu: float) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "callers": callers,
        "cpu_ms": cpu * 1000 / max(1, len(ms)),
        "requests": len(ms),
        "seconds": elapsed,
        "rps": len(ms) / elapsed,
        "p50_ms": statistics.median(ms),
        "p95_ms": statistics.quantiles(ms, n=20)[-1] if len(ms) > 1 else ms[0],
    }


def load_sync(url: str, key: str, callers: int, seconds: float, queries: list[str]) -> dict:
    latencies: list[float] = []
    counter = iter(range(1 << 62))
    lock = threading.Lock()
    clients = [MemoryClient(url, key) for _ in range(callers)]
    for mem in clients:
        mem.recall("warm up", user_id=USER)
    start, cpu = time.monotonic(), time.process_time()
    stop = start + seconds

    def caller(mem: MemoryClient) -> None:
        while time.monotonic() < stop:
            with lock:
                q = queries[next(counter) % len(queries)]
            t = time.perf_counter()
            mem.recall(q, user_id=USER, k=10)
            done = time.perf_counter() - t
            with lock:
                latencies.append(done)

    threads = [threading.Thread(target=caller, args=(m,)) for m in clients]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
    for mem in clients:
        mem.close()
    return _summary(latencies, elapsed, callers, cpu)


async def load_async(url: str, key: str, callers: int, seconds: float, queries: list[str]) -> dict:
    latencies: list[float] = []
    next_query = 0
    limits = httpx.Limits(max_connections=callers, max_keepalive_connections=callers)
    transport = httpx.AsyncHTTPTransport(limits=limits)
    async with AsyncMemoryClient(url, key, transport=transport) as mem:
        await asyncio.gather(*(mem.recall("warm up", user_id=USER) for _ in range(callers)))
        start, cpu = time.monotonic(), time.process_time()
        stop = start + seconds

        async def caller() -> None:
            nonlocal next_query
            while time.monotonic() < stop:
                q = queries[next_query % len(queries)]
                next_query += 1
                t = time.perf_counter()
                await mem.recall(q, user_id=USER, k=10)
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(caller() for _ in range(callers)))
        elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
    return _summary(latencies, elapsed, callers, cpu)


def main(argv: list[str]) -> None:
    if argv[0] == "corpus":
        records, queries = int(argv[1]), int(argv[2])
        # Queries are distinct sentences of another seed, so no cache can answer them.
        out = {"texts": texts(records), "queries": generated_sentences(queries, seed=1)}
    elif argv[0] == "load":
        url, key, callers, seconds = argv[1], argv[2], int(argv[3]), float(argv[4])
        queries = json.loads(Path(argv[5]).read_text())
        if argv[6] == "sync":
            out = load_sync(url, key, callers, seconds, queries)
        else:
            out = asyncio.run(load_async(url, key, callers, seconds, queries))
    else:
        raise SystemExit(__doc__)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
