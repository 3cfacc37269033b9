"""OpenTelemetry tracing (memsvc/tracing.py): the span trees of an add and a recall over a
real HTTP server and through the embedded SDK, caught by the SDK's in-memory exporter; no
memory content in any span; export over real OTLP/HTTP from the OTEL_* variables; nothing
imported or recorded while off."""

from __future__ import annotations

import ast
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from memsvc import Memory, SentenceTransformerEmbedder, Settings, tracing
from memsvc.api.app import create_app
from tests.conftest import app_in_thread

ROOT = Path(__file__).resolve().parents[1]
# Words that must never reach a span: the record's text, the query, the user and the tenant.
RECORD = "Quillfeather the heron nests beside the Zanzibar lighthouse"
QUERY = "where does Quillfeather nest"
USER = "user-marrowbone"
TENANT = "tenant-halcyon"
# What the add test writes, to a user of its own: every other test reads only RECORD, which
# the fixture writes, so each test stands alone (xdist may split the file).
ADDED = "Brindlewick the otter fishes under the Kestrel bridge"
ADDER = "user-thistledown"
SECRETS = (
    "quillfeather",
    "zanzibar",
    "lighthouse",
    "marrowbone",
    "halcyon",
    "brindlewick",
    "kestrel",
    "thistledown",
)


@dataclass
class Traced:
    mem: Memory
    url: str
    key: str
    exporter: InMemorySpanExporter
    provider: TracerProvider


@pytest.fixture(scope="module")
def traced(
    embedder: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    home = tmp_path_factory.mktemp("traced")
    mem = Memory(settings=Settings(home=home, maintain_seconds=0), embedder=embedder)
    try:
        _, key = mem.keys.create(TENANT)
        mem.for_tenant(TENANT).add(RECORD, user_id=USER)
        with app_in_thread(create_app(mem)) as url:
            yield Traced(mem, url, key, exporter, provider)
    finally:
        tracing.disable()
        mem.close()
        provider.shutdown()


def _trace_of(spans: tuple[ReadableSpan, ...], root: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.context.trace_id == root.context.trace_id]


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _descendants(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    out: list[ReadableSpan] = []
    for child in _children(spans, parent):
        out += [child, *_descendants(spans, child)]
    return out


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def _assert_no_content(spans: list[ReadableSpan]) -> None:
    """No span name, attribute key or value, event or status holds a word of the record,
    the query, the user or the tenant."""
    for s in spans:
        shown = [s.name, str(s.status.description or "")]
        for key, value in {**dict(s.attributes or {}), **dict(s.resource.attributes)}.items():
            shown += [key, str(value)]
        for event in s.events:
            shown += [event.name, str(dict(event.attributes or {}))]
        text = " ".join(shown).lower()
        assert not [w for w in SECRETS if w in text], (s.name, text)


def _server_span(t: Traced, name: str) -> tuple[ReadableSpan, list[ReadableSpan]]:
    spans = t.exporter.get_finished_spans()
    server = [s for s in spans if s.name == name]
    assert len(server) == 1, [s.name for s in spans]
    return server[0], _trace_of(spans, server[0])


def test_an_add_over_http_is_one_trace(traced: Traced) -> None:
    """POST /v1/memories: the server span (route template, method, status) over auth and
    the SDK call, which embeds, writes in one transaction and updates the index."""
    traced.exporter.clear()
    r = httpx.post(
        f"{traced.url}/v1/memories",
        json={"text": ADDED, "user_id": ADDER},
        headers={"Authorization": f"Bearer {traced.key}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    server, trace = _server_span(traced, "POST /v1/memories")
    assert server.parent is None
    assert server.kind.name == "SERVER"
    assert server.attributes is not None
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.route"] == "/v1/memories"
    assert server.attributes["http.response.status_code"] == 201
    assert {s.name for s in _children(trace, server)} == {"auth", "memsvc.add"}
    add = _one(trace, "memsvc.add")
    assert add.attributes is not None and add.attributes["memsvc.records"] == 1
    assert add.attributes["memsvc.tenant_hash"] == tracing.digest(TENANT)
    below = {s.name for s in _children(trace, add)}
    assert {"embed", "db.write", "index.apply_write"} <= below, below
    assert _one(trace, "embed").attributes == {"memsvc.texts": 1}
    assert _one(trace, "index.apply_write").attributes == {"memsvc.records": 1}
    writes = [s for s in trace if s.name == "db.write"]
    assert writes and all(s.attributes == {"db.system": "sqlite"} for s in writes)
    _assert_no_content(trace)


def test_a_recall_over_http_is_one_trace_continuing_the_callers(traced: Traced) -> None:
    """POST /v1/memories/search carrying W3C trace context: the server span continues the
    caller's trace; below the SDK call, the query embedding and one read transaction holding
    the index catch-ups, each channel (with its hit count) and the fusion."""
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    traced.exporter.clear()
    r = httpx.post(
        f"{traced.url}/v1/memories/search",
        json={"query": QUERY, "user_id": USER, "k": 3},
        headers={
            "Authorization": f"Bearer {traced.key}",
            "traceparent": f"00-{trace_id}-{parent_id}-01",
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert RECORD in r.text
    server, trace = _server_span(traced, "POST /v1/memories/search")
    assert f"{server.context.trace_id:032x}" == trace_id
    assert server.parent is not None and f"{server.parent.span_id:016x}" == parent_id
    assert {s.name for s in _children(trace, server)} == {"auth", "memsvc.arecall"}
    call = _one(trace, "memsvc.arecall")
    attrs = dict(call.attributes or {})
    assert attrs["memsvc.k"] == 3 and attrs["memsvc.hits"] == 1
    assert attrs["memsvc.recipe"].startswith("dense=")
    assert "memsvc.query" not in attrs  # opt-in only
    assert {s.name for s in _children(trace, call)} == {"embed.query", "db.read"}
    read = _one(_children(trace, call), "db.read")
    inside = _descendants(trace, read)
    names = [s.name for s in inside]
    catch_ups = [s for s in inside if s.name == "index.catch_up"]
    assert sorted(str((s.attributes or {})["memsvc.index"]) for s in catch_ups) == [
        "text",
        "vectors",
    ]
    assert "recall.fusion" in names
    channels = {s.name: s for s in inside if s.name.startswith("channel.")}
    assert {"channel.dense", "channel.keyword"} <= set(channels), names
    assert (channels["channel.dense"].attributes or {})["memsvc.hits"] == 1
    for s in [*catch_ups, *channels.values(), _one(inside, "recall.fusion")]:
        assert s.parent is not None and s.parent.span_id == read.context.span_id, s.name
    _assert_no_content(trace)


def test_the_embedded_sdk_makes_the_same_spans_with_its_call_as_root(traced: Traced) -> None:
    """`Memory.recall` in-process: `memsvc.recall` is the root, the internal spans are the
    HTTP recall's. The tenant's view of the SDK too (`for_tenant`)."""
    traced.exporter.clear()
    hits = traced.mem.for_tenant(TENANT).recall(QUERY, user_id=USER, k=2)
    assert [h.record.content for h in hits] == [RECORD]
    spans = traced.exporter.get_finished_spans()
    root = _one(list(spans), "memsvc.recall")
    assert root.parent is None
    trace = _trace_of(spans, root)
    names = {s.name for s in trace}
    assert {"embed.query", "db.read", "index.catch_up", "channel.dense", "recall.fusion"} <= names
    _assert_no_content(trace)


def test_the_query_text_is_on_the_recall_span_only_when_asked(
    traced: Traced, embedder: SentenceTransformerEmbedder
) -> None:
    """MEMSVC_OTEL_CAPTURE_QUERY=true (a setting) adds the query text, nothing else."""
    settings = traced.mem.settings.model_copy(update={"otel_capture_query": True})
    with Memory(settings=settings, embedder=embedder) as mem:
        traced.exporter.clear()
        mem.for_tenant(TENANT).recall(QUERY, user_id=USER, k=1)
    root = _one(list(traced.exporter.get_finished_spans()), "memsvc.recall")
    assert (root.attributes or {})["memsvc.query"] == QUERY


def test_a_failed_call_is_an_error_span_naming_only_the_class(traced: Traced) -> None:
    traced.exporter.clear()
    r = httpx.post(
        f"{traced.url}/v1/memories/search",
        json={"query": QUERY, "user_id": USER, "cube": "no-such-cube-zanzibar"},
        headers={"Authorization": f"Bearer {traced.key}"},
        timeout=30,
    )
    assert r.status_code == 404
    server, trace = _server_span(traced, "POST /v1/memories/search")
    assert (server.attributes or {})["http.response.status_code"] == 404
    call = _one(trace, "memsvc.arecall")
    assert call.status.status_code.name == "ERROR"
    assert (call.attributes or {})["error.type"] == "CubeNotFound"
    assert not call.events  # no exception event: its message quotes the input
    _assert_no_content(trace)


class _Collector(http.server.BaseHTTPRequestHandler):
    """A minimal OTLP/HTTP collector: keeps each POST /v1/traces body, decoded."""

    received: list[ExportTraceServiceRequest] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            self.received.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def test_otel_variables_send_spans_to_an_otlp_collector(
    traced: Traced, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `memsvc serve` does with OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME set:
    spans leave over OTLP/HTTP (protobuf) to the collector, named by the service."""
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracing.from_env() is None  # nothing asks for traces: off
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    assert tracing.from_env() is None  # `none` wins over an endpoint

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Collector.received.clear()
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "memsvc-under-test")
    provider = tracing.from_env()
    assert provider is not None
    try:
        tracing.enable(provider)
        traced.mem.for_tenant(TENANT).recall(QUERY, user_id=USER, k=1)
        assert provider.force_flush(10_000)
    finally:
        tracing.enable(traced.provider)  # back to the module's in-memory exporter
        provider.shutdown()
        server.shutdown()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.from_env() is None
    spans = [
        (rs.resource, s)
        for req in _Collector.received
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    names = {s.name for _, s in spans}
    assert {"memsvc.recall", "embed.query", "db.read", "channel.dense"} <= names, names
    services = {
        a.value.string_value for r, _ in spans for a in r.attributes if a.key == "service.name"
    }
    assert services == {"memsvc-under-test"}


def test_off_records_nothing_and_imports_nothing(traced: Traced) -> None:
    """While off, every span is the same do-nothing object and an SDK call records nothing;
    no module of ours but memsvc/tracing.py imports OpenTelemetry, and that one only inside
    functions (so the core runs without the SDK installed)."""
    tracing.disable()
    try:
        assert tracing.span("a") is tracing.span("b", {"k": 1}) is tracing.server_span("GET", [])
        traced.exporter.clear()
        assert traced.mem.for_tenant(TENANT).recall(QUERY, user_id=USER, k=1)
        assert traced.exporter.get_finished_spans() == ()
    finally:
        tracing.enable(traced.provider)
    for path in sorted((ROOT / "memsvc").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "opentelemetry" not in source:
            continue
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            if any(m.startswith("opentelemetry") for m in mods):
                assert path == ROOT / "memsvc" / "tracing.py", path
                assert node not in tree.body, f"{path}:{node.lineno}: a top-level import"
