"""Core benchmark: add throughput against the raw embedder, and recall latency at 10k records.

    python -m memsvc.evals.bench_core [--records 10000] [--queries 200] [--json OUT]

Measures, on the public SDK with the real bundled model and SQLite:
  * raw embedder throughput (texts/s) on the same texts the adds use, batch 100 and single,
    timed interleaved with the adds so noise hits both alike;
  * `Memory.add` throughput, batches of 100 and single adds, and its share of the raw rate;
  * `Memory.recall` latency p50/p95 at `--records` records in one cube, with the query
    embedding included, and excluded (queries embedded beforehand), idle and with another
    CPU-bound process running beside it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from memsvc import Memory, SentenceTransformerEmbedder, Settings
from memsvc.evals.corpus import generated_sentences, texts

console = Console(stderr=True)


class PrecomputedQueries:
    """An Embedder that answers known queries from a table: recall minus query embedding."""

    def __init__(self, inner: SentenceTransformerEmbedder, queries: Sequence[str]) -> None:
        self.inner = inner
        self.table = dict(zip(queries, inner.encode(list(queries)), strict=True))

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 1 and texts[0] in self.table:
            return self.table[texts[0]][None, :]
        return self.inner.encode(texts)


def _pct(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1000
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "mean_ms": float(arr.mean()),
    }


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_add(emb: SentenceTransformerEmbedder, work: Path, n_batch: int, n_single: int) -> dict:
    """Raw embedding and `add` are timed on the same texts, interleaved batch by batch (and in
    alternating order), so machine noise and drift hit both sides alike."""
    batch_texts = generated_sentences(n_batch, seed=1)
    single_texts = generated_sentences(n_single, seed=2)
    emb.encode(batch_texts[:100])  # warm up
    raw_batch = add_batch = raw_single = add_single = 0.0
    with Memory(settings=Settings(home=work / "add"), embedder=emb) as mem:
        mem.add("warm up the cube", user_id="bench")
        for n, i in enumerate(range(0, n_batch, 100)):
            chunk = batch_texts[i : i + 100]
            for step in ("raw", "add") if n % 2 == 0 else ("add", "raw"):
                t = time.perf_counter()
                if step == "raw":
                    emb.encode(chunk)
                    raw_batch += time.perf_counter() - t
                else:
                    mem.add(chunk, user_id="bench")
                    add_batch += time.perf_counter() - t
        for n, text in enumerate(single_texts):
            for step in ("raw", "add") if n % 2 == 0 else ("add", "raw"):
                t = time.perf_counter()
                if step == "raw":
                    emb.encode([text])
                    raw_single += time.perf_counter() - t
                else:
                    mem.add(text, user_id="bench")
                    add_single += time.perf_counter() - t
    raw_b, add_b = _rate(n_batch, raw_batch), _rate(n_batch, add_batch)
    raw_s, add_s = _rate(n_single, raw_single), _rate(n_single, add_single)
    return {
        "embedder_batch100_per_s": raw_b,
        "add_batch100_per_s": add_b,
        "add_batch100_share_of_embedder": add_b / raw_b,
        "embedder_single_per_s": raw_s,
        "add_single_per_s": add_s,
        "add_single_share_of_embedder": add_s / raw_s,
        "n_batch": n_batch,
        "n_single": n_single,
    }


def _recall_times(mem: Memory, queries: list[str]) -> list[float]:
    out = []
    for q in queries:
        t = time.perf_counter()
        mem.recall(q, user_id="bench", k=10)
        out.append(time.perf_counter() - t)
    return out


def bench_recall(emb: SentenceTransformerEmbedder, work: Path, n: int, n_queries: int) -> dict:
    corpus = texts(n)
    queries = generated_sentences(n_queries, seed=99)
    home = work / "recall"
    with Memory(settings=Settings(home=home), embedder=emb) as mem:
        for i in track(range(0, n, 500), description=f"ingesting {n} records", console=console):
            mem.add(corpus[i : i + 500], user_id="bench")
    result: dict = {"records": n, "queries": n_queries}
    fast = PrecomputedQueries(emb, queries)
    for load in (False, True):
        hog = None
        if load:  # another busy process on the same cores
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        try:
            with Memory(settings=Settings(home=home), embedder=emb) as mem:
                _recall_times(mem, queries[:20])  # warm: index loaded, caches hot
                incl = _recall_times(mem, queries)
            with Memory(settings=Settings(home=home), embedder=fast) as mem:
                _recall_times(mem, queries[:20])
                excl = _recall_times(mem, queries)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        key = "under_load" if load else "idle"
        result[key] = {"with_query_embedding": _pct(incl), "without_query_embedding": _pct(excl)}
    return result


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", type=int, default=10_000, help="records in the recall cube")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--add-batch", type=int, default=2000, help="texts added in batches of 100")
    ap.add_argument("--add-single", type=int, default=200, help="texts added one at a time")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for batches")
    ap.add_argument("--query-threads", type=int, default=None, help="torch threads per query")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    threads = args.threads or Settings().embed_threads
    qthreads = args.query_threads or Settings().query_threads
    emb = SentenceTransformerEmbedder(threads=threads, query_threads=qthreads)
    emb.encode(["load"])
    with tempfile.TemporaryDirectory(prefix="memsvc-bench-") as tmp:
        work = Path(tmp)
        add = bench_add(emb, work, args.add_batch, args.add_single)
        rec = bench_recall(emb, work, args.records, args.queries)
    result = {"embed_threads": threads, "query_threads": qthreads, "add": add, "recall": rec}

    t = Table(title=f"memsvc core benchmark (torch threads: {threads} batch, {qthreads} query)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("embedder, batches of 100", f"{add['embedder_batch100_per_s']:.1f} texts/s")
    t.add_row(
        "add, batches of 100",
        f"{add['add_batch100_per_s']:.1f} records/s "
        f"({add['add_batch100_share_of_embedder']:.0%} of embedder)",
    )
    t.add_row("embedder, single texts", f"{add['embedder_single_per_s']:.1f} texts/s")
    t.add_row(
        "add, single",
        f"{add['add_single_per_s']:.1f} records/s "
        f"({add['add_single_share_of_embedder']:.0%} of embedder)",
    )
    for key in ("idle", "under_load"):
        for part in ("with_query_embedding", "without_query_embedding"):
            p = rec[key][part]
            t.add_row(
                f"recall @ {rec['records']} records, {key}, {part.replace('_', ' ')}",
                f"p50 {p['p50_ms']:.2f} ms / p95 {p['p95_ms']:.2f} ms",
            )
    Console().print(t)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
