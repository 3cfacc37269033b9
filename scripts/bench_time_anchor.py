"""A cold cube's first recall with records' stored time anchors against the same data without.

    .venv/bin/python scripts/bench_time_anchor.py [--backend sqlite|postgresql] [--cubes 40]
        [--size 200] [--rounds 6]

Builds two identical data sets of `--cubes` cubes of `--size` generated chat turns (the
bench_tenants generator and its synthetic embedder), empties the `time_anchor` column of the
second (as records written before migration 0011 have it), then opens each in turn, round by
round in alternating order so a busy neighbour slows both alike, and recalls every cube once
(each a cold load: vectors, sentence keys and side index from the database). Prints the first
recalls' p50 / p95 and the median load time per cube for each. PostgreSQL runs its own
throwaway cluster (the Debian server binaries, as the tests use). In process, loopback only.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

from memsvc import Memory
from memsvc.config import get_settings
from memsvc.evals import bench_tenants as bt
from memsvc.evals.pg_cluster import PgCluster, free_port


def _build(root: Path, url: str | None, cubes: int, size: int) -> None:
    emb = bt.SyntheticEmbedder(bt._base_vectors())
    with Memory(settings=bt._settings(root), database_url=url, embedder=emb, tenant=bt.TENANT) as m:
        bt._fill(m, [f"c{i}" for i in range(cubes)], [size] * cubes, f"{size}-turn cubes")


def _empty_anchors(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE memory_records SET time_anchor = NULL"))
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--cubes", type=int, default=40)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="memsvc-anchor-"))
    cluster = PgCluster(free_port()).start() if args.backend == "postgresql" else None
    try:
        urls: dict[str, str | None] = {}
        for arm in ("stored", "empty"):
            urls[arm] = cluster.new_database() if cluster else None
            _build(tmp / arm, urls[arm], args.cubes, args.size)
        _empty_anchors(urls["empty"] or f"sqlite:///{tmp / 'empty' / 'memsvc.db'}")
        questions = bt._questions(args.cubes)
        first: dict[str, list[float]] = {"stored": [], "empty": []}
        loads: dict[str, list[float]] = {"stored": [], "empty": []}
        model = None
        for r in range(args.rounds):
            for arm in ("stored", "empty") if r % 2 == 0 else ("empty", "stored"):
                settings = get_settings().model_copy(update={"home": tmp / arm})
                mem = Memory(
                    settings=settings, database_url=urls[arm], tenant=bt.TENANT, embedder=model
                )
                model = mem._engine.embedder  # one model for every handle
                mem.recall("warm up the model", cube=bt.WARMUP_CUBE, user_id="warmup", k=10)
                warm = mem.index_cache()  # the warm-up cube's load is not counted
                gc.collect()
                gc.freeze()  # as a served worker does after start-up
                for i in range(args.cubes):
                    t = time.perf_counter()
                    mem.recall(questions[i], cube=f"c{i}", user_id=f"c{i}", k=10)
                    first[arm].append((time.perf_counter() - t) * 1e3)
                stats = mem.index_cache()
                seconds = stats.load_seconds - warm.load_seconds
                loads[arm].append(seconds / max(stats.misses - warm.misses, 1) * 1e3)
                mem.close()
                gc.unfreeze()
        for arm, label in (("stored", "stored anchors"), ("empty", "anchors emptied")):
            x = np.asarray(first[arm])
            print(
                f"{args.backend} {label}: first recall p50 / p95 {np.percentile(x, 50):.1f} / "
                f"{np.percentile(x, 95):.1f} ms, load per cube (median of rounds) "
                f"{np.median(loads[arm]):.2f} ms, {len(x)} first recalls"
            )
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
