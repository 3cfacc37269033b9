"""Recall latency with tracing off and on, through the embedded SDK (memsvc/tracing.py).

    .venv/bin/python scripts/bench_tracing.py [--records 500] [--recalls 200] [--rounds 3]

One cube of `--records` texts (LoCoMo turns when ../shared/data is there, then generated
sentences); `--recalls` recalls (k = 10, the default recipe, query embedding included) per
mode and round, the modes interleaved round by round so a busy neighbour slows them alike:

- off: no tracing (the shipped default);
- on, in-memory: every span recorded synchronously (SimpleSpanProcessor) into the SDK's
  in-memory exporter, the cost of making the spans;
- on, OTLP: the production setup, a BatchSpanProcessor sending OTLP/HTTP to a local
  collector that accepts and drops the batches.

Prints p50 / p95 / mean per mode in milliseconds and the spans per recall.
"""

from __future__ import annotations

import argparse
import http.server
import statistics
import tempfile
import threading
import time
from typing import Any

from memsvc import Memory, tracing
from memsvc.evals.corpus import generated_sentences, texts


class _Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def _providers(endpoint: str) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = TracerProvider()
    exporter = InMemorySpanExporter()
    memory.add_span_processor(SimpleSpanProcessor(exporter))
    otlp = TracerProvider()
    otlp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return {"off": None, "on, in-memory": (memory, exporter), "on, OTLP": (otlp, None)}


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=500)
    ap.add_argument("--recalls", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    modes = _providers(f"http://127.0.0.1:{sink.server_port}/v1/traces")
    queries = generated_sentences(args.recalls, seed=7)
    times: dict[str, list[float]] = {m: [] for m in modes}
    spans = 0
    with tempfile.TemporaryDirectory() as home, Memory(home) as mem:
        mem.add(texts(args.records), user_id="bench")
        for q in queries[:20]:  # warm-up: model, index, side index
            mem.recall(q, user_id="bench", k=10)
        for _ in range(args.rounds):
            for mode, setup in modes.items():
                if setup is None:
                    tracing.disable()
                else:
                    tracing.enable(setup[0])
                for q in queries:
                    t0 = time.perf_counter()
                    mem.recall(q, user_id="bench", k=10)
                    times[mode].append((time.perf_counter() - t0) * 1000)
                if setup is not None and setup[1] is not None:
                    spans = len(setup[1].get_finished_spans())
                    setup[1].clear()
        tracing.disable()
    for setup in modes.values():
        if setup is not None:
            setup[0].shutdown()
    sink.shutdown()
    n = len(next(iter(times.values())))
    print(f"{args.records} records, {n} recalls per mode, k=10, {spans / args.recalls:.0f} spans")
    print(f"{'mode':<16}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}")
    for mode, xs in times.items():
        p50, p95, mean = _pct(xs, 0.5), _pct(xs, 0.95), statistics.fmean(xs)
        print(f"{mode:<16}{p50:>9.2f}{p95:>9.2f}{mean:>9.2f}")


if __name__ == "__main__":
    main()
