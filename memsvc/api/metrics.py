"""Prometheus metrics: request counts and latency per route, records and index size per cube,
and the worker's index cache (bytes held against its budget, cubes loaded, hits, misses,
evictions, load seconds: figures of this process, free of any tenant's name).

Each app has its own registry (several apps in one test process never collide). With several
workers each process counts its own requests; scrape each, or run one worker per replica.
Series labelled by cube are for the operator only (`MEMSVC_OPERATOR_TOKEN`); anyone else
sees totals over all tenants. The cube figures are read at most once per
`MEMSVC_METRICS_CACHE_SECONDS`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from memsvc import Memory
from memsvc.api import gc_pauses

__all__ = ["CubeStats", "Metrics", "StatsUnavailable"]

log = logging.getLogger(__name__)

disable_created_metrics()  # the *_created series only add noise to every scrape
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StatsUnavailable(Exception):
    """The database did not answer the latest read of the cube figures."""


class CubeStats:
    """Every cube's figures, read at most once per `ttl` seconds however often they are asked
    for: one read groups every record of every cube, so a read per scrape or probe would let
    anyone who can reach the port keep the database busy.

    One thread reads at a time; others meanwhile get the previous figures (or wait for the
    first). A failed read is remembered for `ttl` too, and its text only logged.
    """

    def __init__(self, memory: Memory, ttl: float) -> None:
        self.memory = memory
        self.ttl = ttl
        self._lock = threading.Lock()
        self._at = -math.inf
        self._stats: list[dict[str, Any]] | None = None
        self._failed = False

    def get(self) -> list[dict[str, Any]]:
        if time.monotonic() - self._at >= self.ttl:
            first = self._stats is None and not self._failed
            if self._lock.acquire(blocking=first):
                try:
                    if time.monotonic() - self._at >= self.ttl:
                        self._refresh()
                finally:
                    self._lock.release()
        if self._failed or self._stats is None:
            raise StatsUnavailable
        return self._stats

    def _refresh(self) -> None:
        try:
            self._stats, self._failed = self.memory.cube_stats(), False
        except Exception:
            log.exception("reading the cube figures failed")
            self._stats, self._failed = None, True
        self._at = time.monotonic()


def _totals(stats: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    """Figures over every cube at once: nothing in them names or counts one tenant."""
    cubes = GaugeMetricFamily("memsvc_cubes", "Cubes, all tenants together.")
    cubes.add_metric([], len(stats))
    by_status: dict[str, int] = {}
    for stat in stats:
        for status, n in stat["records"].items():
            by_status[status] = by_status.get(status, 0) + n
    records = GaugeMetricFamily(
        "memsvc_records", "Records by status, all cubes together.", labels=["status"]
    )
    for status, n in sorted(by_status.items()):
        records.add_metric([status], n)
    vectors = GaugeMetricFamily("memsvc_index_vectors", "Vectors in all loaded cube indexes.")
    vectors.add_metric([], sum(s["index_vectors"] or 0 for s in stats))
    runs = GaugeMetricFamily(
        "memsvc_maintenance_runs_finished", "Maintenance runs finished, all cubes together."
    )
    runs.add_metric([], sum(s["maintenance"]["runs"] for s in stats))
    yield from (cubes, records, vectors, runs)


def _index_cache(memory: Memory) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """The worker's index cache (`Memory.index_cache`): read at every scrape, since it is
    this process's own counters (no database read)."""
    cache = memory.index_cache()
    held = GaugeMetricFamily(
        "memsvc_index_memory_bytes", "Bytes of cube indexes (vector and side) in memory."
    )
    held.add_metric([], cache.bytes)
    yield held
    if cache.budget_bytes is not None:
        budget = GaugeMetricFamily(
            "memsvc_index_memory_budget_bytes", "The index memory budget of this worker."
        )
        budget.add_metric([], cache.budget_bytes)
        yield budget
    loaded = GaugeMetricFamily("memsvc_index_cubes_loaded", "Cubes whose indexes are in memory.")
    loaded.add_metric([], cache.cubes)
    yield loaded
    for name, help_text, value in (
        ("memsvc_index_cache_hits", "Index lookups that found the cube loaded.", cache.hits),
        ("memsvc_index_cache_misses", "Index lookups that loaded the cube.", cache.misses),
        ("memsvc_index_cache_evictions", "Cubes evicted within the budget.", cache.evictions),
        (
            "memsvc_index_load_seconds",
            "Seconds spent loading vector indexes and building side indexes.",
            cache.load_seconds,
        ),
    ):
        counter = CounterMetricFamily(name, help_text)
        counter.add_metric([], value)
        yield counter


def _per_cube(stats: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    """Figures labelled by cube id: the operator's view only."""
    records = GaugeMetricFamily(
        "memsvc_cube_records", "Records per cube and status.", labels=["cube", "status"]
    )
    vectors = GaugeMetricFamily(
        "memsvc_cube_index_vectors", "Vectors in each loaded cube index.", labels=["cube"]
    )
    runs = GaugeMetricFamily(
        "memsvc_maintenance_runs", "Maintenance runs finished per cube.", labels=["cube"]
    )
    last = GaugeMetricFamily(
        "memsvc_maintenance_last_changes",
        "What the cube's latest maintenance run changed, by pass.",
        labels=["cube", "change"],
    )
    when = GaugeMetricFamily(
        "memsvc_maintenance_last_run_timestamp_seconds",
        "When the cube's latest maintenance run finished.",
        labels=["cube"],
    )
    for stat in stats:
        cube = stat["cube_id"]
        for status, n in stat["records"].items():
            records.add_metric([cube, status], n)
        if stat["index_vectors"] is not None:
            vectors.add_metric([cube], stat["index_vectors"])
        m = stat["maintenance"]
        runs.add_metric([cube], m["runs"])
        if m["last"] is not None:
            when.add_metric([cube], m["last"]["finished_at"].timestamp())
            for change, n in m["last"]["counts"].items():
                last.add_metric([cube, change], n)
    yield from (records, vectors, runs, last, when)


class _Scrape:
    """One scrape's collectors: the request series, then the cube figures it may see."""

    def __init__(self, registry: CollectorRegistry, families: list[Any]) -> None:
        self.registry = registry
        self.families = families

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()
        yield from self.families


class Metrics:
    def __init__(self, memory: Memory, *, cache_seconds: float = 15.0) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "memsvc_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "memsvc_request_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.up = Gauge(
            "memsvc_database_up",
            "1 when the latest read of the cube figures succeeded.",
            registry=self.registry,
        )
        self.memory = memory
        self.stats = CubeStats(memory, cache_seconds)
        gc_pauses.watch_pauses()

    def render(self, *, per_cube: bool) -> bytes:
        """Prometheus text; `per_cube` adds the series labelled by cube (the operator's)."""
        families: list[Any] = [*_index_cache(self.memory), *gc_pauses.gc_families()]
        try:
            stats = self.stats.get()
        except StatsUnavailable:
            self.up.set(0)
        else:
            self.up.set(1)
            families += [*_totals(stats), *(_per_cube(stats) if per_cube else ())]
        return generate_latest(_Scrape(self.registry, families))  # type: ignore[arg-type]

    def middleware(self, app: Any) -> Any:
        metrics = self

        async def wrapped(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = 500
            start = time.perf_counter()

            async def capture(message: dict) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    # The server's own time to the response, apart from the network and the
                    # client (W3C Server-Timing): what load tests compare with in-process
                    # latency.
                    took = f"app;dur={1000 * (time.perf_counter() - start):.2f}".encode()
                    headers = [*message.get("headers", []), (b"server-timing", took)]
                    message = {**message, "headers": headers}
                await send(message)

            try:
                await app(scope, receive, capture)
            finally:
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                method = scope["method"]
                metrics.requests.labels(method, path, str(status)).inc()
                metrics.latency.labels(method, path).observe(time.perf_counter() - start)

        return wrapped
