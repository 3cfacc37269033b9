"""GPU similarity-search benchmark: our Triton scans against exact torch search, same data.

    python -m memsvc.evals.bench_gpu [--n 1000000 10000000 100000000] [--batch 1 64]
                                     [--dim 384] [--queries 64] [--seeds FILE.npy] [--json OUT]

Self-contained: it needs torch and Triton only (not the SDK, a database or the embedding
model), so it runs as is on a GPU machine with those two, in under 5 minutes on one H100/H200
at the default sizes. For each size, batch and method it prints ms per query, the database
bytes the method reads per query divided by that time (GB/s), that as a percentage of the
copy bandwidth measured in the same run (a device-to-device copy, bytes read plus written),
and recall@10 against exact search.

Methods: `torch-fp32` and `torch-fp16` (matmul + topk: the exact baselines; fp32 is skipped
when it does not fit), `hamming` (the sign-bit scan alone, 48 B/vector at 384 dimensions),
`int8` (the int8 scan on tensor cores, 1 B/dimension), and `two-stage` (the Hamming scan for
200 candidates, then exact rescoring of them from the fp16 vectors: what the store runs).

Data: MiniLM-like unit vectors made on the device in chunks by `minilm_like` (documented
there), or, with `--seeds`, real MiniLM vectors (an .npy [m, dim] array, e.g. from
`bench_kernels`'s cache) plus per-dimension Gaussian noise, as `bench_kernels.synthetic_like`
does. Queries are held out (drawn the same way, never copied from the database). Exact
ground truth is float32 inner products over the stored float16 vectors.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

K = 10
CANDIDATES = 200  # the store's default: oversample 20 x k 10


def minilm_like(
    n: int, dim: int, *, seed: int, device: str, seeds: torch.Tensor | None = None
) -> torch.Tensor:
    """`n` unit vectors [n, dim] in float16, made in chunks on the device.

    Without real seeds: 4,096 cluster centres share a mean direction (sentence embeddings
    are not centred: two unrelated MiniLM sentences still have cosine ~0.1-0.2), their
    per-dimension spread falls off like a real embedding's spectrum, and each vector is a
    centre plus noise, renormalized, so every vector has near neighbours as real data does.
    With `seeds` (real vectors): a random seed row plus 0.7 x its per-dimension spread."""
    g = torch.Generator(device=device).manual_seed(seed)
    if seeds is None:
        base = torch.Generator(device=device).manual_seed(12345)  # the same space every call
        spread = torch.linspace(1.0, 0.2, dim, device=device)
        mean = torch.randn(dim, device=device, generator=base)
        mean = 0.35 * mean / mean.norm()
        centres = mean + torch.randn(4096, dim, device=device, generator=base) * spread / dim**0.5
        noise = 0.6 * spread / dim**0.5
    else:
        centres = seeds.to(device=device, dtype=torch.float32)
        noise = 0.7 * centres.std(dim=0)
    out = torch.empty((n, dim), dtype=torch.float16, device=device)
    step = 1 << 20
    for s in range(0, n, step):
        m = min(step, n - s)
        pick = torch.randint(0, len(centres), (m,), device=device, generator=g)
        x = centres[pick] + torch.randn(m, dim, device=device, generator=g) * noise
        out[s : s + m] = torch.nn.functional.normalize(x, dim=1).to(torch.float16)
    return out


def _sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


REPEAT = 10  # timed runs per measurement (the median is reported)


def timed(fn: Callable[[], Any], device: str, *, repeat: int | None = None) -> float:
    """Median seconds of `fn` after a warm-up (which also compiles Triton kernels)."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeat or REPEAT):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def copy_bandwidth(device: str, nbytes: int = 4 << 30) -> float:
    """Device-to-device copy, GB/s counting bytes read and written."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), device, repeat=5)
    return 2 * nbytes / seconds / 1e9


class SignCodes:
    """Centred, randomly rotated sign bits packed into int32 words (the store's encoding,
    `RotatedSignEncoder`, made on the device): 1 bit per dimension."""

    def __init__(self, sample: torch.Tensor, seed: int = 0) -> None:
        dim = sample.shape[1]
        g = torch.Generator(device=sample.device).manual_seed(seed)
        self.mean = sample.float().mean(0)
        rot = torch.randn(dim, dim, device=sample.device, generator=g)
        self.rot = torch.linalg.qr(rot.cpu())[0].to(sample.device)
        self.weights = 2 ** torch.arange(32, device=sample.device, dtype=torch.int64)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, dim = x.shape
        out = torch.empty((n, dim // 32), dtype=torch.int32, device=x.device)
        for s in range(0, n, 1 << 22):
            y = (x[s : s + (1 << 22)].float() - self.mean) @ self.rot
            bits = (y > 0).to(torch.int64).view(-1, dim // 32, 32)
            words = (bits * self.weights).sum(-1)
            words = words - (words >= 2**31).to(torch.int64) * 2**32  # as int32 two's complement
            out[s : s + len(words)] = words.to(torch.int32)
        return out


class Int8Codes:
    """Per-dimension symmetric int8 codes; a query is scaled by the same per-dimension steps
    and quantized on its own, so its int8 dot product ranks like the float one."""

    def __init__(self, sample: torch.Tensor) -> None:
        self.scale = sample.float().abs().amax(0).clamp_min(1e-6) / 127

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=torch.int8, device=x.device)
        for s in range(0, len(x), 1 << 22):
            part = x[s : s + (1 << 22)].float() / self.scale
            out[s : s + len(part)] = part.round().clamp(-127, 127).to(torch.int8)
        return out

    def query(self, q: torch.Tensor) -> torch.Tensor:
        y = q.float() * self.scale
        return (y / y.abs().amax(1, keepdim=True).clamp_min(1e-12) * 127).round().to(torch.int8)


def exact_topk(db: torch.Tensor, q: torch.Tensor, k: int) -> torch.Tensor:
    """Ground truth: float32 products over the float16 database, chunked."""
    best_s = torch.full((len(q), k), -math.inf, device=q.device)
    best_i = torch.zeros((len(q), k), dtype=torch.int64, device=q.device)
    for s in range(0, len(db), 1 << 22):
        scores = q.float() @ db[s : s + (1 << 22)].float().T
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        cat_s = torch.cat([best_s, top.values], 1)
        cat_i = torch.cat([best_i, top.indices + s], 1)
        keep = torch.topk(cat_s, k, dim=1).indices
        best_s, best_i = cat_s.gather(1, keep), cat_i.gather(1, keep)
    return best_i


def recall(found: torch.Tensor, truth: torch.Tensor) -> float:
    hits = (found[:, :K, None] == truth[:, None, :K]).any(-1).sum().item()
    return hits / truth[:, :K].numel()


METHODS = ("torch-fp32", "torch-fp16", "hamming", "two-stage", "int8")
Search = Callable[[slice, int], torch.Tensor]


def prepare(
    method: str,
    db: torch.Tensor,
    q_all: torch.Tensor,
    words: torch.Tensor,
    q_words: torch.Tensor,
    free: int,
) -> tuple[int, Search] | None:
    """(database bytes read per pass, search(queries, k) -> ids) for one method, or None if
    its data does not fit. A method's own copy of the data lives only as long as its search
    (at 100M rows: fp16 77 GB, int8 38 GB, fp32 154 GB, which no single GPU holds)."""
    from memsvc.kernels import triton_kernels as tk

    n, dim = db.shape
    if method == "torch-fp32":
        if n * dim * 4 * 1.2 > free:
            return None
        db32 = db.float()
        return n * dim * 4, lambda qi, k: torch.topk(q_all[qi].float() @ db32.T, k, dim=1).indices
    if method == "torch-fp16":
        return n * dim * 2, lambda qi, k: torch.topk(q_all[qi] @ db.T, k, dim=1).indices
    if method == "hamming":
        return words.numel() * 4, lambda qi, k: tk.hamming_topk(q_words[qi], words, k)[1]
    if method == "two-stage":
        return words.numel() * 4 + CANDIDATES * dim * 2, lambda qi, k: tk.two_stage_topk(
            q_words[qi], q_all[qi].float(), words, db, k, oversample=CANDIDATES // k
        )[1]
    codes = Int8Codes(db[: 1 << 20])
    db8, q8 = codes(db), codes.query(q_all)
    return n * dim, lambda qi, k: tk.int8_topk(q8[qi], db8, k)[1]


def measure(
    method: str,
    nbytes: int,
    search: Search,
    n: int,
    truth: torch.Tensor,
    batches: list[int],
    n_queries: int,
    copy: float,
    device: str,
    repeat: int,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One method's rows: recall@10 over the scored queries, speed at each batch size."""
    found = torch.cat([search(slice(s, s + 16), K) for s in range(0, n_queries, 16)])
    r = recall(found, truth)
    rows = []
    for b in batches:
        seconds = timed(lambda b=b: search(slice(0, b), K), device, repeat=repeat)
        gbs = nbytes / seconds / 1e9  # one pass over the data serves the whole batch
        row = {
            "n": n,
            "batch": b,
            "method": method,
            "ms_per_query": round(seconds / b * 1000, 4),
            "gb_per_s": round(gbs, 1),
            "pct_of_copy": round(100 * gbs / copy, 1),
            "recall_at_10": round(r, 4),
        }
        rows.append(row)
        log(
            f"n={n:>11,} batch={b:>3} {method:11s} {row['ms_per_query']:9.4f} ms/query "
            f"{row['gb_per_s']:8.1f} GB/s {row['pct_of_copy']:5.1f}% of copy  "
            f"recall@10 {row['recall_at_10']:.3f}"
        )
    return rows


def run(
    sizes: list[int],
    batches: list[int],
    *,
    dim: int = 384,
    n_queries: int = 64,
    device: str = "cuda",
    seeds: torch.Tensor | None = None,
    methods: tuple[str, ...] = METHODS,
    repeat: int = REPEAT,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    if dim % 32:
        raise ValueError("--dim must be a multiple of 32 (sign bits pack into int32 words)")
    copy = copy_bandwidth(device, (4 << 30) if device != "cpu" else (64 << 20))
    name = torch.cuda.get_device_name(device) if device != "cpu" else "cpu (Triton interpreter)"
    log(f"{name}: copy bandwidth {copy:.0f} GB/s (read + written)")
    rows: list[dict[str, Any]] = []
    for n in sizes:
        t0 = time.perf_counter()
        db = minilm_like(n, dim, seed=1, device=device, seeds=seeds)
        q_all = minilm_like(max([*batches, n_queries]), dim, seed=2, device=device, seeds=seeds)
        signs = SignCodes(db[: 1 << 20])
        words, q_words = signs(db), signs(q_all)
        truth = exact_topk(db, q_all[:n_queries], K)
        log(f"n={n:,}: data made in {time.perf_counter() - t0:.1f} s")
        free = torch.cuda.mem_get_info(device)[0] if device != "cpu" else 1 << 40
        for method in methods:
            prepared = prepare(method, db, q_all, words, q_words, free)
            if prepared is None:
                log(f"n={n:,}: {method} skipped ({n * dim * 4 / 1e9:.0f} GB does not fit)")
                continue
            rows += measure(
                method, *prepared, n, truth, batches, n_queries, copy, device, repeat, log
            )
            del prepared  # the method's own copy of the data goes before the next one's
        del db, words, q_all, q_words
        if device != "cpu":
            torch.cuda.empty_cache()
    return {"device": name, "copy_gb_per_s": round(copy, 1), "dim": dim, "k": K, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1_000_000, 10_000_000, 100_000_000])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=64, help="queries scored for recall@10")
    ap.add_argument("--seeds", type=Path, help="real vectors (.npy) to draw the data around")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--repeat", type=int, default=REPEAT, help="timed runs per figure")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args(argv)
    seeds = None
    if args.seeds:
        import numpy as np

        seeds = torch.from_numpy(np.load(args.seeds)).float()
    t = time.perf_counter()
    results = run(
        args.n,
        args.batch,
        dim=args.dim,
        n_queries=args.queries,
        device=args.device,
        seeds=seeds,
        methods=tuple(args.methods),
        repeat=args.repeat,
    )
    print(f"done in {time.perf_counter() - t:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
