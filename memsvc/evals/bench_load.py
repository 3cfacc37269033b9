"""Load benchmark: N concurrent HTTP clients mixing adds and recalls against a real
`memsvc serve` on 127.0.0.1, for a bounded time.

    python -m memsvc.evals.bench_load --clients 1 8 32 --seconds 20 [--backend sqlite postgresql]
                               [--workers 1] [--add-ratio 0.2] [--preload 2000] [--json OUT]
                               [--rate-limit off|local|shared]

Each backend gets its own server on a free loopback port and a temporary data directory
(PostgreSQL: a throwaway cluster of Debian's server, as the tests use). Before the clients
start, `--preload` records are added so recall has something to search. Each client is an
`httpx.AsyncClient` in one event loop that sends its next request as soon as the previous
one answered: an add of one record with probability `--add-ratio`, a recall (k=10, the
default recipe) otherwise, over users spread across the clients. Reported per backend and
client count: requests per second, p50/p95/p99 latency (ms) per operation and overall,
and errors (any non-2xx answer or transport failure). Only 127.0.0.1 is ever contacted.
`--rate-limit local|shared` turns the per-key limiter on at a rate no client reaches, to
measure what checking it costs (`shared`: one upsert in the database per request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from memsvc.evals.bench_api import start_server
from memsvc.evals.corpus import texts
from memsvc.evals.pg_cluster import PgCluster, free_port

QUERIES = [
    "where does she live now",
    "what instrument does he play",
    "when did they go camping",
    "what did Caroline say about the adoption",
    "which books were mentioned",
    "who went to the concert",
    "what is the plan for the weekend",
    "how is the new job going",
]


@contextmanager
def _server(
    home: Path, database_url: str | None, workers: int = 1, rate_limit: str = "off"
) -> Iterator[tuple[str, str]]:
    extra = {"MEMSVC_MAINTAIN_SECONDS": "0"}
    if rate_limit != "off":  # checked on every request, never reached
        extra["MEMSVC_RATE_LIMIT_PER_SECOND"] = "1000000"
        extra["MEMSVC_RATE_LIMIT_BURST"] = "1000000"
        extra["MEMSVC_RATE_LIMIT_SHARED"] = "true" if rate_limit == "shared" else "false"
    if database_url:
        extra["MEMSVC_DATABASE_URL"] = database_url
    proc, url, key = start_server(home, workers, extra)
    try:
        yield url, key
    finally:
        proc.terminate()
        proc.wait(timeout=60)


async def _client(
    url: str,
    key: str,
    idx: int,
    until: float,
    add_ratio: float,
    pool: list[str],
    out: list[tuple[str, float, bool]],
) -> None:
    rng = random.Random(idx)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        while time.monotonic() < until:
            user = f"user{rng.randrange(8)}"
            if rng.random() < add_ratio:
                op, body, path = "add", {"text": rng.choice(pool), "user_id": user}, "/v1/memories"
            else:
                op, path = "recall", "/v1/memories/search"
                body = {"query": rng.choice(QUERIES), "user_id": user, "k": 10}
            t0 = time.perf_counter()
            try:
                r = await http.post(path, json=body)
                ok = r.status_code < 300
                if not ok:
                    print(f"error: {op} {r.status_code} {r.text[:300]}", file=sys.stderr)
            except httpx.HTTPError as exc:
                ok = False
                print(f"error: {op} {type(exc).__name__}: {exc}", file=sys.stderr)
            out.append((op, time.perf_counter() - t0, ok))


def _stats(lat: list[float]) -> dict[str, float]:
    if not lat:
        return {"n": 0}
    a = np.array(lat) * 1000
    return {
        "n": len(lat),
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p95_ms": round(float(np.percentile(a, 95)), 1),
        "p99_ms": round(float(np.percentile(a, 99)), 1),
    }


def run_backend(
    backend: str,
    clients: list[int],
    seconds: float,
    add_ratio: float,
    preload: int,
    workers: int = 1,
    rate_limit: str = "off",
) -> list[dict[str, Any]]:
    pool = texts(max(preload, 2000) + 2000)
    rows = []
    cluster = PgCluster(free_port()).start() if backend == "postgresql" else None
    try:
        with tempfile.TemporaryDirectory() as home:
            url_db = cluster.new_database() if cluster else None
            with _server(Path(home), url_db, workers, rate_limit) as (url, key):
                h = {"Authorization": f"Bearer {key}"}
                for i in range(0, preload, 250):  # preload in batches, spread over users
                    batch = pool[i : min(i + 250, preload)]
                    user = f"user{(i // 250) % 8}"
                    r = httpx.post(
                        f"{url}/v1/memories",
                        json={"text": batch, "user_id": user},
                        headers=h,
                        timeout=300,
                    )
                    r.raise_for_status()
                for n in clients:
                    out: list[tuple[str, float, bool]] = []
                    until = time.monotonic() + seconds
                    t0 = time.perf_counter()

                    async def main(n: int = n, until: float = until, out=out) -> None:
                        await asyncio.gather(
                            *(
                                _client(url, key, i, until, add_ratio, pool[preload:], out)
                                for i in range(n)
                            )
                        )

                    asyncio.run(main())
                    wall = time.perf_counter() - t0
                    row = {
                        "backend": backend,
                        "workers": workers,
                        "rate_limit": rate_limit,
                        "clients": n,
                        "seconds": round(wall, 1),
                        "requests": len(out),
                        "throughput_rps": round(len(out) / wall, 1),
                        "errors": sum(not ok for _, _, ok in out),
                        "all": _stats([t for _, t, _ in out]),
                        "add": _stats([t for op, t, _ in out if op == "add"]),
                        "recall": _stats([t for op, t, _ in out if op == "recall"]),
                    }
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        if cluster is not None:
            cluster.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--backend", nargs="+", default=["sqlite", "postgresql"])
    p.add_argument("--add-ratio", type=float, default=0.2)
    p.add_argument("--preload", type=int, default=2000)
    p.add_argument("--workers", type=int, default=1, help="API worker processes of the server")
    p.add_argument("--rate-limit", choices=["off", "local", "shared"], default="off")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    if not 0 <= a.add_ratio <= 1 or a.seconds <= 0 or min(a.clients) < 1:
        p.error("--add-ratio must be 0-1, --seconds > 0, --clients >= 1")
    rows = []
    for backend in a.backend:
        if backend not in ("sqlite", "postgresql"):
            p.error(f"unknown backend {backend}")
        rows += run_backend(
            backend, a.clients, a.seconds, a.add_ratio, a.preload, a.workers, a.rate_limit
        )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
