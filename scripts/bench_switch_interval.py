"""Hot recall latency beside cold cubes' first loads, per `MEMSVC_SWITCH_INTERVAL_MS`.

    .venv/bin/python scripts/bench_switch_interval.py [--values 5 1 0.5] [--seconds 45]
        [--rounds 2] [--cubes 2000] [--records 200000]

One real `memsvc serve` worker over a copy of the bench_tenants data (built and cached by
`python -m memsvc.evals.bench_tenants`' builder if missing). Five cubes of 150-250 turns are
loaded, then for `--seconds` one client recalls them in turn (10 ms apart) while a second
client recalls never-seen cubes back to back, each a first load whose side-index build is
Python holding the worker's interpreter lock. The values run interleaved, round by round,
so a busy neighbour slows them alike. Prints the hot recalls' server time (Server-Timing)
p50 / p95 / p99 and the cold loads per second for each value and round. Loopback only.

`--idle`: the served hot recalls alone (no cold client): the HTTP path's own cost.
`--in-process`: the same question without HTTP, in this process (`sys.setswitchinterval` set
per value): 300 hot recalls of five cubes, 2 ms apart, alone and then beside a thread that
rebuilds one cube's side index without pause; prints p50 / p95 / p99 and both rates.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from memsvc.evals import bench_tenants as bt


def _recall(c: httpx.Client, cube: str, query: str) -> float:
    body = {"query": query, "user_id": cube, "cube": cube, "k": 10}
    r = c.post("/v1/memories/search", json=body)
    r.raise_for_status()
    return (bt._server_seconds(r.headers.get("server-timing")) or 0.0) * 1e3


def run(
    ds: bt.Dataset, value: str, seconds: float, cold: list[str], start: int, *, idle: bool
) -> str:
    sizes = dict(zip(ds.names, ds.sizes, strict=True))
    hot = [n for n in ds.names if 150 <= sizes[n] <= 250][:5]
    pool = [n for n in cold if n not in hot]
    qs = bt._questions(2000)
    with tempfile.TemporaryDirectory(prefix="memsvc-switch-") as tmp:
        home = Path(tmp) / "home"
        shutil.copytree(ds.home, home, ignore=shutil.ignore_patterns("indexes"))
        extra = {
            "MEMSVC_INDEX_MEMORY_BYTES": str(1 << 30),
            "MEMSVC_MAINTAIN_SECONDS": "0",
            "MEMSVC_SWITCH_INTERVAL_MS": value,
        }
        with bt._workers(home, 1, extra) as (procs, key):
            url, headers = procs[0][1], {"Authorization": f"Bearer {key}"}
            stop, loads = threading.Event(), [0]

            def cold_loop() -> None:
                with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
                    while not stop.is_set():
                        i = start + loads[0]
                        _recall(c, pool[i % len(pool)], qs[i % len(qs)])
                        loads[0] += 1

            with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
                for n in hot:
                    _recall(c, n, qs[0])
                thread = threading.Thread(target=cold_loop)
                if not idle:
                    thread.start()
                lat: list[float] = []
                until = time.monotonic() + seconds
                while time.monotonic() < until:
                    lat.append(_recall(c, hot[len(lat) % 5], qs[len(lat) % len(qs)]))
                    time.sleep(0.01)
                stop.set()
                if not idle:
                    thread.join()
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return (
        f"switch {value} ms: hot server p50/p95/p99 {p50:.1f}/{p95:.1f}/{p99:.1f} ms "
        f"(n {len(lat)}), cold loads {loads[0] / seconds:.1f}/s"
    )


def in_process(ds: bt.Dataset, value: str) -> str:
    from sqlalchemy import select

    from memsvc import Memory
    from memsvc.config import get_settings
    from memsvc.retrieval.analyze import text_doc
    from memsvc.store.orm import CubeRow
    from memsvc.store.repos.queries import active_text_rows
    from memsvc.store.text_index import CubeTextIndex

    sizes = dict(zip(ds.names, ds.sizes, strict=True))
    hot = [n for n in ds.names if 150 <= sizes[n] <= 250][:6]
    qs = bt._questions(400)
    out = []
    with tempfile.TemporaryDirectory(prefix="memsvc-switch-") as tmp:
        home = Path(tmp) / "home"  # recalls write (reinforcement): never the cached data
        shutil.copytree(ds.home, home, ignore=shutil.ignore_patterns("indexes"))
        settings = get_settings().model_copy(update={"home": home})
        with Memory(settings=settings, tenant=bt.TENANT) as mem:
            for n in hot[:5]:
                mem.recall(qs[0], cube=n, user_id=n, k=10)
            with mem._engine.db.read() as s:  # the rows a cold load analyses
                cube = s.execute(select(CubeRow.pk).where(CubeRow.name == hot[5])).scalar_one()
                rows = active_text_rows(s, cube)
            stop, builds = threading.Event(), [0]

            def build() -> None:
                while not stop.is_set():
                    CubeTextIndex().upsert([text_doc(r) for r in rows])
                    builds[0] += 1

            before = sys.getswitchinterval()
            sys.setswitchinterval(float(value) / 1000)
            try:
                for busy in (False, True):
                    stop.clear()
                    builds[0] = 0
                    thread = threading.Thread(target=build)
                    if busy:
                        thread.start()
                    lat, t0 = [], time.perf_counter()
                    for j in range(300):
                        t = time.perf_counter()
                        mem.recall(qs[j], cube=hot[j % 5], user_id=hot[j % 5], k=10)
                        lat.append((time.perf_counter() - t) * 1e3)
                        time.sleep(0.002)
                    took = time.perf_counter() - t0
                    stop.set()
                    if busy:
                        thread.join()
                    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
                    out.append(
                        f"{'beside a builder' if busy else 'alone'} {p50:.1f}/{p95:.1f}/"
                        f"{p99:.1f} ms, {300 / took:.0f} recalls/s, {builds[0] / took:.0f} builds/s"
                    )
            finally:
                sys.setswitchinterval(before)
    return f"switch {value} ms in-process: hot p50/p95/p99 " + "; ".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--values", nargs="+", default=["5", "1", "0.5"])
    p.add_argument("--seconds", type=float, default=45.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--cubes", type=int, default=2000)
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--in-process", action="store_true", help="no server: see above")
    p.add_argument("--idle", action="store_true", help="served, without the cold client")
    a = p.parse_args()
    ds = bt.build_dataset(a.cubes, a.records, 50, 500)
    start = 0
    for r in range(a.rounds):
        for v in a.values:
            if a.in_process:
                print(f"round {r}: {in_process(ds, v)}", flush=True)
                continue
            # each run takes fresh cubes, so every cold recall is a first load
            got = run(ds, v, a.seconds, ds.names, start, idle=a.idle)
            print(f"round {r}: {got}", flush=True)
            start += int(a.seconds * 100)


if __name__ == "__main__":
    main()
