"""Similarity-search benchmark: our encoders and two-stage search against FAISS, same data.

    python -m memsvc.evals.bench_kernels [--n 100000 1000000] [--dim 384] [--queries 200]
                                  [--oversample 2 5 10 20 40] [--json OUT]

Data: at 100k (and below) real all-MiniLM-L6-v2 embeddings of LoCoMo turns plus generated
sentences, embedded once and cached as .npy in ~/.cache/memsvc/bench (outside the repo);
queries are held out (embedded texts that are not in the database). Beyond the real set,
`synthetic_like` documents the generator: each vector is a real one plus Gaussian noise of the
same per-dimension spread, renormalized, so neighbourhoods look like MiniLM's without being
copies.

Every method runs single-threaded; reported per method: bytes per vector (scan codes plus
what rescoring reads), ms per query at batch 1 and batch 64, recall@10 against exact float
search. Rows: `faiss-flat-ip` (baseline), FAISS binary alone and + rescoring, FAISS RaBitQ +
rescoring, FAISS SQ8, ours (`sign`, `rsign` = centered + rotated sign bits, `int8` / `int4`
= FAISS SQ8 / SQ4 scans, `int8-ours` = the store's int8 codes scanned through BLAS, each +
float rescoring at every oversample), and `memsvc-default` (the store's default mode).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import faiss
import numpy as np
from rich.console import Console
from rich.table import Table

from memsvc.kernels import cpu
from memsvc.kernels.encoders import Int8Quantizer, RotatedSignEncoder, pack_sign_bits

console = Console(stderr=True)
CACHE = Path.home() / ".cache" / "memsvc" / "bench"
# The mode the store searches with by default: MEMSVC_SEARCH_MODE=binary+rescore with
# MEMSVC_SEARCH_OVERSAMPLE=20, i.e. the `rsign+rescore/20` row.
DEFAULT_MODE: tuple[str, int | None] = ("rsign", 20)


def real_embeddings(n: int, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(database [n, 384], held-out queries) of real MiniLM vectors, cached on disk."""
    from memsvc import SentenceTransformerEmbedder
    from memsvc.evals.corpus import generated_sentences

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"minilm_unique_{n}_{n_queries}.npz"
    if path.exists():
        data = np.load(path)
        return data["db"], data["q"]
    emb = SentenceTransformerEmbedder(threads=2)
    docs = unique_texts(n)
    seen = set(docs)
    queries = [
        t for t in dict.fromkeys(generated_sentences(50 * n_queries, seed=991)) if t not in seen
    ]
    queries = queries[:n_queries]  # held out: no query text is in the database
    console.print(f"embedding {n} texts once (cached in {path}) ...")
    db = np.concatenate([emb.encode(docs[i : i + 5000]) for i in range(0, n, 5000)])
    q = emb.encode(queries)
    np.savez(path, db=db, q=q)
    return db, q


def unique_texts(n: int) -> list[str]:
    """`n` distinct texts (the sentence generator repeats itself; duplicates would make exact
    ties and blur recall)."""
    from memsvc.evals.corpus import texts

    size = n
    while True:
        out = list(dict.fromkeys(texts(size)))
        if len(out) >= n:
            return out[:n]
        size *= 2


def synthetic_like(real: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """`n` MiniLM-like vectors: real rows plus per-dimension Gaussian noise, renormalized."""
    rng = np.random.default_rng(seed)
    spread = real.std(axis=0)
    out = np.empty((n, real.shape[1]), np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        x = real[rng.integers(0, len(real), m)] + rng.standard_normal((m, real.shape[1])) * (
            0.7 * spread
        )
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _timed(
    fn: Callable[[np.ndarray], np.ndarray], q: np.ndarray
) -> tuple[float, float, np.ndarray]:
    """(ms per query at batch 1, at batch 64, ids for all queries)."""
    fn(q[:2])  # warm up
    n1 = min(len(q), 50)
    t = time.perf_counter()
    for i in range(n1):
        fn(q[i : i + 1])
    b1 = (time.perf_counter() - t) * 1000 / n1
    t = time.perf_counter()
    ids = np.concatenate([fn(q[i : i + 64]) for i in range(0, len(q), 64)])
    b64 = (time.perf_counter() - t) * 1000 / len(q)
    return b1, b64, ids


def _recall(ids: np.ndarray, exact: np.ndarray) -> float:
    """recall@10, tie-aware: a returned id counts when its exact score reaches the 10th best
    exact score (so equal-scoring neighbours are interchangeable)."""
    hits = []
    for row, scores in zip(ids, exact, strict=True):
        tenth = np.partition(scores, -10)[-10]
        got = [i for i in row[:10] if i >= 0]
        hits.append(sum(bool(scores[i] >= tenth - 1e-6) for i in got) / 10)
    return float(np.mean(hits))


def bench(db: np.ndarray, q: np.ndarray, oversample: Sequence[int]) -> list[dict]:
    faiss.omp_set_num_threads(1)
    if DEFAULT_MODE[1] is not None:  # the store's default is always measured
        oversample = sorted({*oversample, DEFAULT_MODE[1]})
    n, d = db.shape
    rows: list[dict] = []

    def add(method: str, bpv: float, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        b1, b64, ids = _timed(fn, q)
        rows.append(
            {
                "method": method,
                "n": n,
                "dim": d,
                "bytes_per_vector": bpv,
                "ms_per_query_b1": round(b1, 4),
                "ms_per_query_b64": round(b64, 4),
                "recall_at_10": round(_recall(ids, truth), 4),
                "device": "cpu",
            }
        )
        r = rows[-1]
        console.print(
            f"  {method:28s} {bpv:6.0f} B  b1 {r['ms_per_query_b1']:8.3f} ms  "
            f"b64 {r['ms_per_query_b64']:8.3f} ms  recall@10 {r['recall_at_10']:.3f}"
        )

    truth = q.astype(np.float32) @ db.T  # exact scores, for tie-aware recall
    flat = faiss.IndexFlatIP(d)
    flat.add(db)
    faiss.cvar.distance_compute_blas_threshold = 1  # batched exact search uses BLAS (fair)
    add("faiss-flat-ip", 4 * d, lambda x: flat.search(x, 10)[1])

    sq8 = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    sq8.train(db[:100_000])
    sq8.add(db)
    add("faiss-sq8", d, lambda x: sq8.search(x, 10)[1])

    sign_codes = pack_sign_bits(db)
    binary = cpu.BinaryScanCPU(sign_codes)
    add("faiss-binary-flat", d / 8, lambda x: binary.search(pack_sign_bits(x), 10)[1])

    rabitq = faiss.IndexRaBitQ(d, faiss.METRIC_INNER_PRODUCT)
    rabitq.train(db[:100_000])
    refine = faiss.IndexRefineFlat(rabitq)  # RaBitQ codes + float vectors for rescoring
    refine.add(db)

    enc = RotatedSignEncoder.fit(db[:100_000], seed=0)
    rsign = cpu.BinaryScanCPU(enc.encode(db))
    scans: dict[str, tuple[float, Callable[[np.ndarray, int], np.ndarray]]] = {
        "sign": (d / 8, lambda x, c: binary.search(pack_sign_bits(x), c)[1]),
        "rsign": (d / 8, lambda x, c: rsign.search(enc.encode(x), c)[1]),
        "int8": (d, lambda x, c: sq8.search(x, c)[1]),
    }
    sq4 = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_4bit, faiss.METRIC_INNER_PRODUCT)
    sq4.train(db[:100_000])
    sq4.add(db)
    scans["int4"] = (d / 2, lambda x, c: sq4.search(x, c)[1])
    # the store's int8 mode: our per-dimension int8 codes, scanned through BLAS
    q8 = Int8Quantizer.fit(db[:100_000])
    codes8 = q8.encode(db)
    scans["int8-ours"] = (d, lambda x, c: cpu.int8_knn(q8.query(x)[0], codes8, c)[1])

    for os_ in oversample:
        c = 10 * os_
        params = faiss.IndexRefineSearchParameters(k_factor=float(os_))
        add(
            f"faiss-rabitq+rescore/{os_}",
            rabitq.code_size + 4 * d,
            lambda x, p=params: refine.search(x, 10, params=p)[1],
        )
        add(
            f"faiss-binary+rescore/{os_}",
            d / 8 + 4 * d,
            lambda x, c=c: cpu.rescore_topk(x, db, binary.search(pack_sign_bits(x), c)[1], 10)[1],
        )
        for name, (bpv, scan) in scans.items():
            if name == "sign":
                continue  # identical to faiss-binary+rescore (our CPU sign scan is FAISS's)
            add(
                f"{name}+rescore/{os_}",
                bpv + 4 * d,
                lambda x, c=c, scan=scan: cpu.rescore_topk(x, db, scan(x, c), 10)[1],
            )
    mode, os_ = DEFAULT_MODE
    name = "faiss-flat-ip" if mode == "exact" else f"{mode}+rescore/{os_}"
    default = next(r for r in rows if r["method"] == name)
    rows.append({**default, "method": "memsvc-default"})
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[100_000])
    ap.add_argument("--dim", type=int, default=384, help="all-MiniLM-L6-v2 gives 384")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--oversample", type=int, nargs="+", default=[2, 5, 10, 20, 40])
    ap.add_argument("--real", type=int, default=100_000, help="real MiniLM vectors to embed")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.dim != 384:
        raise SystemExit("--dim must be 384: the vectors are all-MiniLM-L6-v2 embeddings")
    real, q = real_embeddings(min(args.real, max(args.n)), args.queries)
    rows: list[dict] = []
    for n in args.n:
        db = real[:n] if n <= len(real) else synthetic_like(real, n)
        console.print(f"n = {n} ({'real' if n <= len(real) else 'synthetic-like'}) ...")
        rows += bench(db, q, args.oversample)
    table = Table(title="similarity search, 1 thread")
    for col in ("method", "n", "B/vector", "ms b1", "ms b64", "recall@10"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["method"],
            str(r["n"]),
            f"{r['bytes_per_vector']:.0f}",
            f"{r['ms_per_query_b1']:.3f}",
            f"{r['ms_per_query_b64']:.3f}",
            f"{r['recall_at_10']:.3f}",
        )
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
