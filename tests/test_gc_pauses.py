"""The worker's garbage-collector pauses: timed by generation, and start-up objects frozen."""

from __future__ import annotations

import gc
import re

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
