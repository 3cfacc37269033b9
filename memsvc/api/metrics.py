"""Prometheus metrics: request counts and latency per route, records and index size per cube.

Each app has its own registry (several apps in one test process never collide). With several
workers each process counts its own requests; scrape each, or run one worker per replica.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from memsvc import Memory

__all__ = ["Metrics"]

disable_created_metrics()  # the *_created series only add noise to every scrape
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _CubeCollector(Collector):
    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    def collect(self) -> Iterator[GaugeMetricFamily]:
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
        for stat in self.memory.cube_stats():
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
        yield records
        yield vectors
        yield runs
        yield last
        yield when


class Metrics:
    def __init__(self, memory: Memory) -> None:
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
        self.registry.register(_CubeCollector(memory))

    def render(self) -> bytes:
        return generate_latest(self.registry)

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
