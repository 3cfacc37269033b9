"""Activation tier benchmark: generation with a memory context from a stored KV cache vs
recomputing the same prompt, through the public SDK (`Memory.promote` + `Memory.generate`).

    python -m memsvc.evals.bench_tiers [--tokens 256 1024 2048] [--repeat 3] [--json OUT]

For each context size, memory records (LoCoMo turns from ../shared when present, generated
sentences otherwise, joined into records of about 120 tokens) fill one cube until the
memory context reaches the size; `promote` builds one KV cache of them; `generate` then
answers a question with `k` = all of them, once with the cache and once recomputing (the
median of `--repeat` runs each). Time to first token counts everything from the call to
the first new token: recall, choosing and loading the cache file, and the forward pass.
Greedy decoding: the outputs must be identical. Prints one JSON row per size:
  {"context_tokens", "ttft_cached_s", "ttft_recomputed_s", "total_cached_s",
   "total_recomputed_s", "identical_output", "speedup_ttft", "cache_bytes",
   "bytes_per_token"}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from memsvc import Memory, Settings
from memsvc.evals.corpus import texts
from memsvc.lm import LocalLM

QUESTION = "Summarise in one sentence what these memories are about."


def _records(lm: LocalLM, n_tokens: int, pool: list[str], start: int) -> tuple[list[str], int]:
    """Records of about 120 tokens from `pool[start:]` until the context holds `n_tokens`."""
    records: list[str] = []
    total = len(lm.preamble_ids())
    cur: list[str] = []
    i = start
    while total < n_tokens and i < len(pool):
        cur.append(pool[i])
        i += 1
        text = " ".join(cur)
        n = len(lm.memory_ids(text))
        if n >= 120 or total + n >= n_tokens:
            records.append(text)
            total += n
            cur = []
    return records, i


def run(
    sizes: list[int], repeat: int, max_tokens: int, threads: int | None
) -> list[dict[str, Any]]:
    pool = texts(4000)
    rows = []
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), lm_threads=threads, activation_max_tokens=8192)
        with Memory(settings=settings) as mem:
            lm = mem.local_lm
            start = 0
            for size in sizes:
                recs, start = _records(lm, size, pool, start)
                cube = mem.create_cube(f"ctx{size}").id
                ids = [r.id for r in mem.add(recs, user_id="bench", cube=cube)]
                act = mem.promote(ids)
                k = len(ids)
                mem.generate(QUESTION, user_id="bench", cube=cube, k=k, max_tokens=4)  # warm
                cached, fresh = [], []
                for _ in range(repeat):
                    cached.append(
                        mem.generate(
                            QUESTION, user_id="bench", cube=cube, k=k, max_tokens=max_tokens
                        )
                    )
                    fresh.append(
                        mem.generate(
                            QUESTION,
                            user_id="bench",
                            cube=cube,
                            k=k,
                            max_tokens=max_tokens,
                            use_cache=False,
                        )
                    )
                if any(g.cache_id != act.id for g in cached):
                    raise SystemExit(f"size {size}: the cache was not used")
                tokens = int(act.source["tokens"])
                row = {
                    "context_tokens": tokens,
                    "ttft_cached_s": round(statistics.median(g.ttft_s for g in cached), 4),
                    "ttft_recomputed_s": round(statistics.median(g.ttft_s for g in fresh), 4),
                    "total_cached_s": round(statistics.median(g.total_s for g in cached), 4),
                    "total_recomputed_s": round(statistics.median(g.total_s for g in fresh), 4),
                    "identical_output": all(
                        c.text == f.text for c, f in zip(cached, fresh, strict=True)
                    ),
                    "new_tokens_max": max_tokens,
                    "cache_bytes": int(act.source["bytes"]),
                    "bytes_per_token": round(int(act.source["bytes"]) / tokens, 1),
                }
                row["speedup_ttft"] = round(row["ttft_recomputed_s"] / row["ttft_cached_s"], 2)
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tokens", type=int, nargs="+", default=[256, 1024, 2048])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=32, help="new tokens per generation")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the LM")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    a = p.parse_args(argv)
    rows = run(a.tokens, a.repeat, a.max_tokens, a.threads)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
