"""Garbage-collector pauses in a serving worker: measured, and kept short.

A full collection walks every container object the process holds. A worker holds some
600,000 of them once the model and the libraries are loaded, and a full pass over them
stopped every request in the worker for about 0.3 s (measured on a cold cube's first recall
over the 200k-record bench_tenants data, 2-core machine). `freeze_startup_objects` moves what
start-up made into the permanent generation, which no collection walks again (CPython's
`gc.freeze`, meant for this); objects made later, such as the side indexes of loaded cubes,
are collected as before, and `unfreeze` hands the frozen ones back at shutdown so the
interpreter's last collection still sees them.

The pauses are exported as a histogram by generation (what a tail-latency hunt looks at
first), beside the count of frozen objects.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

__all__ = ["freeze_startup_objects", "gc_families", "unfreeze", "watch_pauses"]

BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, float("inf"))

# Re-entrant: a collection can start inside any allocation, so the callback may run in a
# thread that already holds the lock (rendering /metrics); a plain Lock deadlocked that
# thread there, and with it every later /metrics.
_lock = threading.RLock()
_started: dict[int, float] = {}  # thread id -> when its collection began
_counts = [[0] * len(BUCKETS) for _ in range(3)]  # per generation, per bucket (not cumulative)
_sums = [0.0, 0.0, 0.0]
_watching = False


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    now = time.perf_counter()
    tid = threading.get_ident()
    if phase == "start":
        _started[tid] = now
        return
    began = _started.pop(tid, None)
    gen = int(info.get("generation", 2))
    if began is None or not 0 <= gen <= 2:
        return
    took = now - began
    with _lock:
        _sums[gen] += took
        for i, edge in enumerate(BUCKETS):
            if took <= edge:
                _counts[gen][i] += 1
                break


def watch_pauses() -> None:
    """Time every collection from now on (once per process; later calls do nothing)."""
    global _watching
    with _lock:
        if _watching:
            return
        _watching = True
    gc.callbacks.append(_on_gc)


def gc_families() -> Iterator[HistogramMetricFamily | GaugeMetricFamily]:
    fam = HistogramMetricFamily(
        "memsvc_gc_pause_seconds",
        "Garbage-collector pauses of this worker by generation (2: full collections).",
        labels=["generation"],
    )
    with _lock:
        counts = [list(c) for c in _counts]
        sums = list(_sums)
    for gen in range(3):
        running, buckets = 0, []
        for edge, n in zip(BUCKETS, counts[gen], strict=True):
            running += n
            buckets.append(("+Inf" if edge == float("inf") else repr(edge), running))
        fam.add_metric([str(gen)], buckets, sums[gen])
    yield fam
    yield GaugeMetricFamily(
        "memsvc_gc_frozen_objects",
        "Objects this worker exempted from collections at start-up (MEMSVC_GC_FREEZE).",
        value=gc.get_freeze_count(),
    )


def freeze_startup_objects() -> int:
    """Collect once, then exempt every surviving object from later collections. Returns how
    many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def unfreeze() -> None:
    gc.unfreeze()
