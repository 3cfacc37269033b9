"""HTTP recall benchmark: concurrent clients against a real `memsvc serve` on loopback.

    python -m memsvc.evals.bench_api [--records 10000] [--clients 1 8 32] [--seconds 20]
                              [--workers 1] [--home DIR] [--json OUT]

Starts a server on 127.0.0.1 (a free port, a temporary data directory, a fresh API key),
loads `--records` memories into one cube through `MemoryClient`, then for each client count
runs that many concurrent `AsyncMemoryClient` tasks doing `recall` in a closed loop for
`--seconds` (bounded: the run always stops by itself). Queries are distinct generated
sentences, so no cache can answer them. Reports requests/s, latency p50/p95/p99 and errors.
`--home DIR` keeps the data directory, so a second run skips the loading.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from memsvc import AsyncMemoryClient, MemoryClient, MemsvcError
from memsvc.evals.corpus import generated_sentences, texts
from memsvc.evals.serving import until_ready

console = Console(stderr=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    home: Path, workers: int, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str, str]:
    """A `memsvc serve` on a free loopback port with a fresh API key: (process, url, key)."""
    env = {**os.environ, "MEMSVC_HOME": str(home), **(extra_env or {})}
    made = subprocess.run(
        [sys.executable, "-m", "memsvc.cli", "keys", "create", "--tenant", "bench", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(made.stdout)["key"]
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memsvc.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    if until_ready(url, lambda: proc.poll() is None, timeout=180):
        return proc, url, key
    proc.kill()
    raise SystemExit("the server did not start")


async def _load(url: str, key: str, clients: int, seconds: float, queries: list[str]) -> dict:
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    next_query = 0

    async def worker(mem: AsyncMemoryClient) -> None:
        nonlocal errors, next_query
        while time.monotonic() < stop:
            q = queries[next_query % len(queries)]
            next_query += 1
            t = time.perf_counter()
            try:
                hits = await mem.recall(q, user_id="bench", k=10)
                if len(hits) != 10:
                    errors += 1
            except (MemsvcError, httpx.HTTPError):
                errors += 1
                continue
            latencies.append(time.perf_counter() - t)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with AsyncMemoryClient(
        url, key, timeout=60, transport=httpx.AsyncHTTPTransport(limits=limits)
    ) as mem:
        await mem.recall("warm up", user_id="bench")
        start = time.monotonic()
        await asyncio.gather(*(worker(mem) for _ in range(clients)))
        elapsed = time.monotonic() - start
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "clients": clients,
        "seconds": elapsed,
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=20.0, help="per client count (bounded)")
    ap.add_argument("--workers", type=int, default=1, help="server worker processes")
    ap.add_argument("--home", type=Path, default=None, help="keep data here (reused next run)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    queries = generated_sentences(20_000, seed=7)
    with tempfile.TemporaryDirectory(prefix="memsvc-bench-api-") as tmp:
        home = args.home or Path(tmp)
        proc, url, key = start_server(home, args.workers)
        try:
            corpus = texts(args.records)
            with MemoryClient(url, key, timeout=300) as mem:
                have = sum(c.records for c in mem.list_cubes() if c.name == "user:bench")
                for i in track(
                    range(have, len(corpus), 500), description="loading", console=console
                ):
                    mem.add(corpus[i : i + 500], user_id="bench")
            rows = []
            for n in args.clients:
                console.print(f"{n} client(s) for {args.seconds:.0f} s ...")
                rows.append(asyncio.run(_load(url, key, n, args.seconds, queries)))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    result = {"records": args.records, "workers": args.workers, "rows": rows}

    table = Table(title=f"recall over HTTP, {args.records} records, {args.workers} worker(s)")
    for col in ("clients", "requests/s", "p50 ms", "p95 ms", "p99 ms", "requests", "errors"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["clients"]),
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            str(r["requests"]),
            str(r["errors"]),
        )
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
