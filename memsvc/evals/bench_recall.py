"""In-process recall latency per recipe, at several cube sizes (query embedding included).

    python -m memsvc.evals.bench_recall [--n 10000 100000] [--recipes fast balanced deep]
                                 [--queries 300] [--busy 1] [--json OUT] [--cache-dir DIR]

Each size gets one cube filled through `Memory.add` as chat sessions: the LoCoMo dev turns
with their real speakers and dates first, then generated sentences spoken by a rotating cast
of names, 20 turns per session, one session a day (so every channel has entities, sessions
and times to work on). Document embeddings go through the eval's on-disk cache, so only the
first run at a size pays for them. Queries are the LoCoMo dev questions (then generated
questions), each recalled once per recipe with k = 10 in a single thread, after a warm-up;
p50/p95/p99 are of the whole `recall` call: embedding, channels, fusion and the records.
`--busy N` repeats each measurement with N other processes spinning on the CPU (another
tenant's work on a shared machine), rows marked `"busy": N`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from memsvc import Memory, SentenceTransformerEmbedder
from memsvc.evals.corpus import CAST, chat_days, default_locomo, generated_sentences
from memsvc.evals.embed_cache import CachedEmbedder
from memsvc.evals.locomo import load_locomo

console = Console(stderr=True)


def sessions(n: int) -> list[tuple[str, list[dict]]]:
    """(session id, messages) covering `n` turns: LoCoMo first, then generated."""
    out: list[tuple[str, list[dict]]] = []
    total = 0
    path = default_locomo()
    if path.exists():
        for conv in load_locomo(path):
            for num, turns in conv.sessions.items():
                msgs = [{"name": t.speaker, "content": t.text, "timestamp": t.time} for t in turns]
                msgs = msgs[: n - total]
                if msgs:
                    out.append((f"{conv.sample_id}-{num}", msgs))
                    total += len(msgs)
    extra = generated_sentences(max(0, n - total), seed=7)
    start = datetime(2022, 1, 1, 9, tzinfo=UTC)
    out += [(f"gen-{d}", msgs) for d, msgs in enumerate(chat_days(extra, start))]
    return out


def questions(m: int) -> list[str]:
    out: list[str] = []
    path = default_locomo()
    if path.exists():
        out = [q.question for c in load_locomo(path) for q in c.questions]
    extra = [f"What did {CAST[i % len(CAST)]} say about {s.split()[-1].strip('.')}?"
             for i, s in enumerate(generated_sentences(m, seed=11))]  # fmt: skip
    return (out + extra)[:m]


def _spin(stop: Any) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


class Busy:
    """N processes burning CPU for the duration of a `with` block."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.stop = mp.Event()
        self.procs: list[mp.Process] = []

    def __enter__(self) -> Busy:
        self.procs = [
            mp.Process(target=_spin, args=(self.stop,), daemon=True) for _ in range(self.n)
        ]
        for proc in self.procs:
            proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for proc in self.procs:
            proc.join(timeout=5)


def measure(mem: Memory, cube: str, recipe: str, qs: list[str]) -> dict[str, float]:
    t = time.perf_counter()  # the first call loads the index (and builds the side index)
    mem.recall(qs[0], user_id="bench", cube=cube, k=10, recipe=recipe)
    first_ms = (time.perf_counter() - t) * 1000
    for q in qs[1:10]:  # warm-up: caches
        mem.recall(q, user_id="bench", cube=cube, k=10, recipe=recipe)
    lat = []
    for q in qs:
        t = time.perf_counter()
        mem.recall(q, user_id="bench", cube=cube, k=10, recipe=recipe)
        lat.append((time.perf_counter() - t) * 1000)
    a = np.asarray(lat)
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "first_ms": first_ms,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--recipes", nargs="+", default=["fast", "balanced", "deep"])
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--busy", type=int, default=0, help="also measure with N CPU hogs")
    p.add_argument("--json", type=Path)
    p.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache/memsvc/eval")
    args = p.parse_args(argv)

    emb = CachedEmbedder(SentenceTransformerEmbedder(), args.cache_dir)
    qs = questions(args.queries)
    rows = []
    for n in args.n:
        with tempfile.TemporaryDirectory(prefix="memsvc-bench-recall-") as home:
            mem = Memory(home, embedder=emb)
            cube = f"bench-{n}"
            mem.create_cube(cube)
            t = time.perf_counter()
            for sid, msgs in track(sessions(n), description=f"loading {n}", console=console):
                mem.add(messages=msgs, user_id="bench", session_id=sid, cube=cube)
            load_s = time.perf_counter() - t
            for busy in sorted({0, args.busy}):
                for recipe in args.recipes:
                    r = {"n": n, "recipe": recipe, "busy": busy, "queries": len(qs)}
                    r["load_s"] = round(load_s, 1)
                    with Busy(busy):
                        r |= measure(mem, cube, recipe, qs)
                    rows.append(r)
                    console.print(r)
            mem.close()
    table = Table(title="recall latency, k = 10, one thread, query embedding included")
    for c in ("n", "recipe", "busy", "p50_ms", "p95_ms", "p99_ms"):
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(
            str(r["n"]),
            r["recipe"],
            str(r["busy"]),
            *(f"{r[c]:.1f}" for c in ("p50_ms", "p95_ms", "p99_ms")),
        )
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
