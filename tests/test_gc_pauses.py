"""The worker's garbage-collector pauses: timed by generation, and start-up objects frozen."""

from __future__ import annotations

import gc
import re
import threading

from prometheus_client import CollectorRegistry, generate_latest

from memsvc.api import gc_pauses


class _Families:
    def collect(self):  # type: ignore[no-untyped-def]
        yield from gc_pauses.gc_families()


def _scrape() -> str:
    registry = CollectorRegistry()
    registry.register(_Families())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def _count(text: str, gen: int) -> float:
    for line in text.splitlines():
        if line.startswith(f'memsvc_gc_pause_seconds_count{{generation="{gen}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no count for generation {gen}")


def _frozen(text: str) -> float:
    # Read as a number: the exposition format writes a million and more as 1.1e+06.
    found = re.search(r"^memsvc_gc_frozen_objects (\S+)$", text, re.M)
    assert found is not None, "no memsvc_gc_frozen_objects gauge"
    return float(found.group(1))


def test_full_collections_are_timed_and_frozen_objects_counted() -> None:
    gc_pauses.watch_pauses()
    gc_pauses.watch_pauses()  # once per process: a second call adds no second callback
    assert gc.callbacks.count(gc_pauses._on_gc) == 1
    before = _count(_scrape(), 2)
    gc.collect()
    assert _count(_scrape(), 2) == before + 1
    try:
        frozen = gc_pauses.freeze_startup_objects()
        assert frozen > 1000 and _frozen(_scrape()) == frozen
    finally:
        gc_pauses.unfreeze()
    assert gc.get_freeze_count() == 0 and _frozen(_scrape()) == 0


def test_a_collection_inside_the_metrics_snapshot_does_not_deadlock() -> None:
    """A collection can start at any allocation, also while the thread rendering /metrics
    holds the figures' lock; the callback then runs in that thread. (A served worker's
    /metrics hung for good in CI this way.)"""
    gc_pauses.watch_pauses()
    done = threading.Event()

    def render_while_collecting() -> None:
        with gc_pauses._lock:  # as gc_families holds it while it copies the figures
            gc.collect()  # the callback runs here, in this thread
        done.set()

    threading.Thread(target=render_while_collecting, daemon=True).start()
    assert done.wait(10), "the GC callback deadlocked on the lock its own thread holds"
    assert _count(_scrape(), 2) >= 1
